"""Apps defined in a notebook are captured by value, or refused with a message saying why."""

from __future__ import annotations

import linecache
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Message, RecordDict, ServerApp
from fedlab.deploy.bundle import build_bundle, load_bundle
from fedlab.errors import BundleError

# A notebook's cells, as a kernel runs them: code compiled under a per-cell file name
# that only linecache knows, in a namespace that is not an importable module.
NOTEBOOK = """
import numpy as np
import fedlab as fl
from fedlab import RecordDict as RD
from dataclasses import dataclass

LR = 0.5
SIZES = {"small": [1, 2], "large": (3, 4)}

@dataclass
class Scaler:
    factor: float = 2.0

    def apply(self, w):
        return w * self.factor + offset()

def offset():
    return LR

def clip(msg, ctx, call_next):
    reply = call_next(msg, ctx)
    return reply

client = fl.ClientApp(mods=[clip])

@client.train()
def train(msg, ctx):
    w = msg.content["arrays"].to_numpy()[0]
    out = Scaler(ctx.run_config.get("factor", 2.0)).apply(np.asarray(w))
    n = len(SIZES["small"])
    return msg.reply(RD({"arrays": fl.ArrayRecord([out]), "metrics": fl.MetricRecord({"num-examples": n})}))

step = train
"""

CALL_TRAIN = """
import sys
import numpy as np
from fedlab import ArrayRecord, Context, Message, RecordDict
from fedlab.deploy.bundle import load_bundle

bundle = load_bundle(open(sys.argv[1], "rb").read())
app = bundle.client_app()
msg = Message(RecordDict({"arrays": ArrayRecord([np.array([1.0, 2.0])])}), 5, "train")
reply = app(msg, Context(run_id=1, node_id=5, run_config=bundle.run_config))
assert not reply.has_error(), reply.error.reason
print(reply.content["arrays"].to_numpy()[0].tolist(), reply.content["metrics"]["num-examples"])
"""

_cells = 0


def run_cells(source: str) -> dict[str, object]:
    """Execute ``source`` the way a notebook kernel does and return its namespace."""
    global _cells
    _cells += 1
    source = textwrap.dedent(source)
    filename = f"<notebook-cell-{_cells}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace


def call_in_fresh_process(data: bytes, tmp_path: Path) -> str:
    (tmp_path / "app.bundle").write_bytes(data)
    out = subprocess.run(
        [sys.executable, "-c", CALL_TRAIN, "app.bundle"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_notebook_app_runs_in_a_fresh_process_from_its_captured_source(tmp_path: Path) -> None:
    namespace = run_cells(NOTEBOOK)
    data = build_bundle(namespace["client"], run_config={"factor": 3.0})  # type: ignore[arg-type]
    assert load_bundle(data).manifest["client_app"]["source"] == "captured"
    # w * 3 + LR for w = [1, 2]; two examples from SIZES["small"].
    assert call_in_fresh_process(data, tmp_path) == "[3.5, 6.5] 2"


def test_the_captured_module_holds_only_what_the_app_uses() -> None:
    namespace = run_cells(NOTEBOOK + "\nunused = object()\n")
    bundle = load_bundle(build_bundle(namespace["client"]))  # type: ignore[arg-type]
    (path,) = bundle.files
    source = bundle.files[path].decode()
    assert "import numpy as np" in source and "LR = 0.5" in source and "class Scaler" in source
    assert "unused" not in source and "step" not in source
    assert "@client.train()" not in source  # registrations are replayed explicitly
    assert "client.train('default', mods=[])(train)" in source


def test_a_captured_app_keeps_its_mods_and_lifespan(tmp_path: Path) -> None:
    namespace = run_cells(
        NOTEBOOK
        + textwrap.dedent(
            """
            calls = []
            @client.lifespan()
            def life(ctx):
                yield
            """
        )
    )
    app = load_bundle(build_bundle(namespace["client"])).client_app()  # type: ignore[arg-type]
    assert [m.__name__ for m in app._mods] == ["clip"]
    assert app._lifespan is not None and app._lifespan.__name__ == "life"


def test_a_handler_may_refer_to_its_app_under_another_name() -> None:
    namespace = run_cells(
        """
        import fedlab as fl
        client = fl.ClientApp()
        same = client

        @client.query()
        def query(msg, ctx):
            kinds = same.message_types
            return msg.reply(fl.RecordDict({"m": fl.MetricRecord({"kinds": len(kinds)})}))
        """
    )
    app = load_bundle(build_bundle(namespace["client"])).client_app()  # type: ignore[arg-type]
    reply = app(Message(RecordDict(), 5, "query"), Context(run_id=1, node_id=5))
    assert reply.content["m"]["kinds"] == 1  # type: ignore[index]


def test_a_captured_server_app_runs_its_main() -> None:
    namespace = run_cells(
        """
        import fedlab as fl
        ROUNDS = 4
        server = fl.ServerApp()

        @server.main()
        def main(grid, context):
            return ROUNDS * 10
        """
    )
    bundle = load_bundle(build_bundle("fedlab.demo:client", namespace["server"]))  # type: ignore[arg-type]
    server = bundle.server_app()
    assert isinstance(server, ServerApp) and server(None, None) == 40  # type: ignore[arg-type]


def test_a_local_helper_module_is_shipped_with_the_notebook_app(tmp_path: Path) -> None:
    helper = tmp_path / "nbhelper_shipped.py"
    helper.write_text("def triple(w):\n    return w * 3\n")
    sys.path.insert(0, str(tmp_path))
    try:
        namespace = run_cells(
            """
            import fedlab as fl
            from nbhelper_shipped import triple
            app = fl.ClientApp()

            @app.train()
            def train(msg, ctx):
                w = triple(msg.content["arrays"].to_numpy()[0])
                return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
                                                "metrics": fl.MetricRecord({"num-examples": 1})}))
            """
        )
        data = build_bundle(namespace["app"])  # type: ignore[arg-type]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nbhelper_shipped", None)
    assert "nbhelper_shipped.py" in load_bundle(data).files
    run_dir = tmp_path / "node"
    run_dir.mkdir()
    assert call_in_fresh_process(data, run_dir) == "[3.0, 6.0] 1"


def test_an_app_from_a_plain_script_main_is_captured(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import fedlab as fl
            from fedlab.deploy.bundle import build_bundle
            app = fl.ClientApp()

            @app.train()
            def train(msg, ctx):
                w = msg.content["arrays"].to_numpy()[0] - 1
                return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
                                                "metrics": fl.MetricRecord({"num-examples": 7})}))

            if __name__ == "__main__":
                open(sys.argv[1], "wb").write(build_bundle(app))
            """
        )
    )
    subprocess.run([sys.executable, str(script), "app.bundle"], cwd=tmp_path, check=True)
    data = (tmp_path / "app.bundle").read_bytes()
    script.unlink()
    assert call_in_fresh_process(data, tmp_path) == "[0.0, 1.0] 7"


def captured_app(cell: str) -> Callable[[], bytes]:
    namespace = run_cells("import fedlab as fl\napp = fl.ClientApp()\n" + textwrap.dedent(cell))
    return lambda: build_bundle(namespace["app"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            """
            import numpy as np
            data = np.ones(3)
            @app.train()
            def train(msg, ctx):
                return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([data])}))
            """,
            r"Cannot capture 'train': it uses 'data', which is a numpy.ndarray object.*inside the function",
        ),
        (
            """
            def make(lr):
                def train(msg, ctx):
                    return lr
                return train
            app.train()(make(0.1))
            """,
            r"closure over lr",
        ),
        (
            """
            app.train()(lambda msg, ctx: msg)
            """,
            r"not a plain function|lambda",
        ),
        (
            """
            import functools
            def base(msg, ctx, scale):
                return msg
            app.train()(functools.partial(base, scale=2))
            """,
            r"functools.partial object is not a plain function",
        ),
        (
            """
            INF = float("inf")
            @app.train()
            def train(msg, ctx):
                return INF
            """,
            r"'INF', which is a float that cannot be written as a literal",
        ),
    ],
    ids=["array", "closure", "lambda", "partial", "infinity"],
)
def test_what_cannot_be_captured_is_named_in_the_error(cell: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        captured_app(cell)()


def test_a_function_whose_source_is_nowhere_is_refused() -> None:
    namespace: dict[str, object] = {"__name__": "__prompt__"}
    # Compiled under a file name linecache does not know, as code typed at a bare prompt.
    exec(
        compile(
            "import fedlab as fl\napp = fl.ClientApp()\n@app.train()\ndef train(msg, ctx):\n    return msg\n",
            "<stdin>",
            "exec",
            dont_inherit=True,
        ),
        namespace,
    )
    with pytest.raises(BundleError, match="Cannot read the source of 'train'"):
        build_bundle(namespace["app"])  # type: ignore[arg-type]


def test_an_empty_client_app_is_refused() -> None:
    with pytest.raises(BundleError, match="no functions"):
        build_bundle(ClientApp())


def test_capture_does_not_change_what_the_app_computes_locally() -> None:
    namespace = run_cells(NOTEBOOK)
    app = namespace["client"]
    assert isinstance(app, ClientApp)
    build_bundle(app)
    msg = Message(RecordDict({"arrays": ArrayRecord([np.array([1.0])])}), 5, "train")
    reply = app(msg, Context(run_id=1, node_id=5))
    assert reply.content["arrays"].to_numpy()[0].tolist() == [2.5]  # type: ignore[union-attr]
