import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from parallel import run_cases  # noqa: E402


def _power(base: int, exp: int) -> int:
    return base ** exp


def test_run_cases_keeps_order_serial_and_parallel():
    cases = [(b, e) for b in range(2, 6) for e in (1, 2)]
    want = [b ** e for b, e in cases]
    assert run_cases(_power, cases, jobs=1) == want
    assert run_cases(_power, cases, jobs=2) == want
    assert run_cases(_power, [], jobs=2) == []
