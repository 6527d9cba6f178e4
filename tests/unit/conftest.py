import pytest

from greenloop.tasks import load_tasks
from greenloop.verify.funnel import Verifier, VerifyConfig


@pytest.fixture(scope="session")
def humaneval():
    return load_tasks("humaneval")


@pytest.fixture(scope="session")
def he_verifier(humaneval):
    with Verifier(humaneval, VerifyConfig(timeout_s=5)) as verifier:
        yield verifier


def verify(verifier, candidates):
    out = [None] * len(candidates)
    for index, verdict in verifier.verify(candidates):
        out[index] = verdict
    return out
