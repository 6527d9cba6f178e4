"""The plots' line follows the model in use: a rolled-back candidate stays off it."""

from greenloop.loop.plots import in_use


def test_the_line_keeps_the_promoted_value_through_rolled_back_cycles():
    points = [(0, 0.17, True), (1, 0.19, True), (2, 0.20, False), (3, 0.21, True), (4, 0.18, False)]
    assert in_use(points) == [(0, 0.17), (1, 0.19), (2, 0.19), (3, 0.21), (4, 0.21)]


def test_a_first_point_rolled_back_still_starts_the_line():
    assert in_use([(1, 0.3, False), (2, 0.4, True)]) == [(1, 0.3), (2, 0.4)]
