"""A short fuzz run of every decoder in CI, and the committed corpus replayed through it.

The targets are the ones under ``fuzz/`` (atheris runs them for millions of inputs
outside CI). Each must handle any input as documented: a result, or its one error type
(CodecError, BundleError, DeployError, a gRPC status); anything else fails here.
Hypothesis draws inputs two ways: arbitrary bytes, and committed seeds with a few bytes
overwritten, inserted or cut, which keeps the inputs close to what the decoders accept.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedlab.deploy.superlink import nodes

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
sys.path.insert(0, str(FUZZ))
try:
    import _common
    import fuzz_bundle
    import fuzz_codec
    import fuzz_events
    import fuzz_rpc
    import fuzz_wire
finally:
    sys.path.remove(str(FUZZ))

TARGETS: dict[str, ModuleType] = {
    m.TARGET: m for m in (fuzz_codec, fuzz_wire, fuzz_events, fuzz_bundle, fuzz_rpc)
}
# Examples per target and way of drawing; the RPC target builds a SuperLink state per input.
EXAMPLES = {"codec": 1000, "wire": 600, "events": 1000, "bundle": 600, "rpc": 400}


def short(target: str) -> settings:
    """Bounded and reproducible: the same examples on every run, nothing kept on disk."""
    return settings(max_examples=EXAMPLES[target], deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with up to four edits: a byte overwritten, bytes inserted, or a cut."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["set", "insert", "cut"]))
        if edit == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[where : where + draw(st.integers(1, 16))]
    return bytes(data)


def _seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in _common.corpus_files(target)]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_committed_corpus_input_is_handled_as_documented(target: str) -> None:
    seeds = _seeds(target)
    assert seeds, f"fuzz/corpus/{target} is empty; run python fuzz/make_corpus.py"
    for seed in seeds:
        TARGETS[target].test_one_input(seed)
    # The RPC target seeds node ids while it serves; the SuperLink's randomness is back after.
    assert nodes.secrets is secrets


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_arbitrary_bytes_are_handled_as_documented(target: str) -> None:
    prefix = st.just(b"") if target not in ("bundle", "rpc") else st.binary(min_size=2, max_size=2)
    strategy = st.tuples(prefix, st.binary(max_size=512)).map(b"".join)

    @short(target)
    @given(strategy)
    def run(data: bytes) -> None:
        TARGETS[target].test_one_input(data)  # raises on a crash; hypothesis prints the input

    run()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_valid_inputs_are_handled_as_documented(target: str) -> None:
    seeds = _seeds(target)

    @short(target)
    @given(mutated(seeds))
    def run(data: bytes) -> None:
        TARGETS[target].test_one_input(data)

    run()


def test_the_corpus_stays_small_and_covers_every_rpc() -> None:
    files = [p for p in (FUZZ / "corpus").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 2**20
    seeds = _seeds("rpc")
    assert len(fuzz_rpc.METHODS) == 38
    for secured in (False, True):  # both modes: open, and through the real gates
        methods = {fuzz_rpc.method_of(seed) for seed in seeds if len(seed) > 1 and bool(seed[0] & 0x80) == secured}
        assert len(methods) == len(fuzz_rpc.METHODS), secured
