"""What every fuzz target shares: running under atheris, and the corpus on disk.

A target module defines ``test_one_input(data: bytes) -> None``, which returns normally
for every input the code under test handles as documented (a result, or the one error
type it promises) and raises anything else: that is a crash. The same function runs
under atheris (``python fuzz/fuzz_X.py CORPUS_DIR -runs=N``), under hypothesis in CI
(``tests/fuzz``) and over the committed corpus.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

#: The committed seed corpora, one folder per target (fuzz/corpus/<target>/).
CORPUS = Path(__file__).resolve().parent / "corpus"
# The checkout's fedlab, not an installed one, whatever the current directory.
if str(CORPUS.parent.parent) not in sys.path:
    sys.path.insert(1, str(CORPUS.parent.parent))


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Instrument the modules imported inside when atheris drives this process.

    Imported by a test (no atheris, or not the main script), this does nothing.
    """
    script = Path(getattr(sys.modules.get("__main__"), "__file__", None) or "-")
    if script.parent == CORPUS.parent and script.name.startswith("fuzz_"):
        try:
            import atheris
        except ImportError:
            yield
            return
        with atheris.instrument_imports(include=["fedlab", "zipfile", "json"]):
            yield
        return
    yield


def corpus_files(target: str) -> list[Path]:
    """The seed inputs committed for ``target``, in a stable order."""
    return sorted(p for p in (CORPUS / target).iterdir() if p.is_file())


def run(test_one_input: Callable[[bytes], None], *, everything: bool = False) -> None:
    """Fuzz ``test_one_input`` with atheris, with libFuzzer's usual command line.

    ``everything`` also instruments the modules loaded before the target's imports (the
    standard library's zipfile and json, say), so that their branches guide the fuzzer.

    Example: ``python fuzz/fuzz_codec.py fuzz/corpus/codec -runs=1000000``.
    """
    import atheris

    if everything:
        atheris.instrument_all()

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
