"""Resource limits for one candidate run."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock for the whole run, enforced from outside the child
    cpu_s: int | None = None  # RLIMIT_CPU; defaults to the wall timeout rounded up, plus one
    memory_mb: int = 2048  # RLIMIT_AS, and the fork server's memory cgroup where there is one
    # False leaves RLIMIT_AS at the hard limit, for CUDA jobs: the driver reserves address
    # space far beyond what it uses (it failed to start under an 8 GB cap). Host memory is
    # then bounded only by the fork server's memory cgroup, where one could be made.
    cap_address_space: bool = True
    max_processes: int = 64  # RLIMIT_NPROC (counts per user: enforced where the uid is dropped)
    max_file_mb: int = 16  # RLIMIT_FSIZE: any file written, captured stdout/stderr included
    max_open_files: int = 64  # RLIMIT_NOFILE
    output_cap_bytes: int = 8 << 20  # result frames from the child; more is a failure
    log_cap_bytes: int = 16 << 10  # how much of stdout/stderr is kept in the verdict

    def __post_init__(self):
        if self.timeout_s <= 0:
            raise ValueError(f"Limits.timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 64:
            raise ValueError(f"Limits.memory_mb must be >= 64, got {self.memory_mb}")
        if self.max_processes < 1 or self.max_open_files < 8:
            raise ValueError("Limits.max_processes must be >= 1 and max_open_files >= 8")

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 1

    def to_dict(self) -> dict:
        return asdict(self)
