"""Coverage-guided fuzzing of linker's parsers with atheris (libFuzzer for Python).

    python -m tests.fuzz.run TARGET [libFuzzer options]      # e.g. -runs=1000000 -max_total_time=3600
    python -m tests.fuzz.run --list

TARGET is one of tests/fuzz/targets.py's TARGETS. The run starts from the checked-in seed corpus
(tests/fuzz/corpus/TARGET, read only) and keeps what it finds in a scratch corpus directory
($LINKER_FUZZ_SCRATCH/TARGET, default /tmp/linker-fuzz/TARGET; -artifact_prefix says where a crash input goes).
Exit status 0: no failure in the runs; anything else: libFuzzer's report of the failing input, which then
belongs in the seed corpus with its fix.
linker's modules are instrumented for coverage; the standard library and dependencies are not.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(2)
    import atheris

    with atheris.instrument_imports(include=["linker", "tests.fuzz", "tests.pair"]):
        from tests.fuzz.targets import TARGETS
    if argv[0] == "--list":
        print("\n".join(TARGETS))
        return
    name, options = argv[0], argv[1:]
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; one of: {', '.join(TARGETS)}")
    scratch = Path(os.environ.get("LINKER_FUZZ_SCRATCH", "/tmp/linker-fuzz")) / name
    scratch.mkdir(parents=True, exist_ok=True)
    if not any(o.startswith("-rss_limit_mb") for o in options):
        # nothing may allocate without bound: 1 GiB above where this process starts. libFuzzer reads the peak RSS
        # (getrusage), which a process started from a big one (a long pytest run) inherits across fork and exec
        start_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        options.append(f"-rss_limit_mb={start_mb + 1024}")
    seeds = [str(CORPUS / name)] if (CORPUS / name).is_dir() else []
    atheris.Setup([sys.argv[0], *options, str(scratch), *seeds], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
