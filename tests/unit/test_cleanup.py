import os

from greenloop.sandbox.cleanup import remove_tree


def test_removes_deep_trees_links_and_locked_dirs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    top = tmp_path / "work"
    os.makedirs(top)
    here = os.open(top, os.O_RDONLY)
    for _ in range(1500):  # deeper than PATH_MAX allows as one path
        os.mkdir("d", dir_fd=here)
        child = os.open("d", os.O_RDONLY, dir_fd=here)
        os.close(here)
        here = child
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=here), "w") as fh:
        fh.write("x")
    os.close(here)
    os.symlink(outside, top / "link")
    os.mkdir(top / "locked")
    (top / "locked" / "file").write_text("x")
    os.chmod(top / "locked", 0)
    remove_tree(str(top))
    assert not top.exists()
    assert (outside / "keep").read_text() == "precious"  # the link was removed, not followed


def test_missing_path_and_plain_file(tmp_path):
    remove_tree(str(tmp_path / "nothing"))
    target = tmp_path / "file"
    target.write_text("x")
    remove_tree(str(target))
    assert not target.exists()
