"""Removing what a candidate left behind, however it is shaped, and reaping the
sandbox's own helper processes within a time limit."""

from __future__ import annotations

import os
import select

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def remove_tree(path: str) -> None:
    """Delete a directory tree without following links, without recursion and without
    long paths: a candidate may plant symlinks, nest directories thousands deep (past
    PATH_MAX) or take away its own permissions. Walks by directory descriptors, holding
    only one open at a time. Best effort: what cannot be removed stays."""
    try:
        os.rmdir(path)  # the usual case, a candidate's work dir left empty: one system call
        return
    except OSError:
        pass
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except (NotADirectoryError, OSError):
        _try(os.unlink, path)
        return
    names: list[str] = []  # the way down, to find each directory's name on the way up
    while True:
        sub = _clear_files(fd)
        if sub is not None:
            _try(os.chmod, sub, 0o700, dir_fd=fd)
            try:
                child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                _try(os.rmdir, sub, dir_fd=fd)
                continue
            os.close(fd)
            fd = child
            names.append(sub)
            continue
        if not names:
            break
        parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = parent
        if not _try(os.rmdir, names.pop(), dir_fd=fd):
            break  # something is in the way; give up rather than loop
    os.close(fd)
    _try(os.rmdir, path)


def _clear_files(fd: int) -> str | None:
    """Unlink every non-directory in the directory; return one subdirectory's name."""
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    return entry.name
                _try(os.unlink, entry.name, dir_fd=fd)
    except OSError:
        pass
    return None


def _try(func, *args, **kwargs) -> bool:
    try:
        func(*args, **kwargs)
        return True
    except OSError:
        return False


def reap_within(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for the child `pid` to end, and reap it. False if it is
    still running then; True once reaped, also by someone else already."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if not select.select([pidfd], [], [], seconds)[0]:
            return False
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    finally:
        os.close(pidfd)
    return True
