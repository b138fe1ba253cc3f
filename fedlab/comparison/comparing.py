"""`compare`: several federations on the same clients and split, shown and returned together.

The federations run one after another (sequentially), each exactly as ``fed.run(rounds)``
would run it alone; their events also reach one comparison display, tagged with the
federation's name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from fedlab.comparison.history import ComparedHistory
from fedlab.dashboard import Display
from fedlab.errors import FederationError
from fedlab.events import Event
from fedlab.federation import Federation
from fedlab.server import Result
from fedlab.strategy import ConfigSource, Strategy

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from fedlab.datasets import FederatedDataset

__all__ = ["CompareView", "Comparison", "compare"]


class CompareView(Protocol):
    """What shows a comparison live: it takes each event with the name of its federation."""

    def feed(self, name: str, event: Event) -> None:
        """Take in ``event`` of the federation ``name``."""

    def idle(self) -> None:
        """Send what is pending; called while a run waits."""


class Comparison(Mapping[str, Result]):
    """What :func:`compare` returns: one Result per federation, by name, in the order run.

    ``comparison["FedProx"]`` is that federation's Result; :attr:`history` holds every
    History (``comparison.history.to_pandas()`` has a ``federation`` column);
    :meth:`final` tabulates the last round's metrics; :meth:`plot` draws the curves.
    """

    def __init__(self, results: Mapping[str, Result]) -> None:
        self._results = dict(results)

    def __getitem__(self, name: str) -> Result:
        try:
            return self._results[name]
        except KeyError:
            names = ", ".join(map(repr, self._results))
            raise KeyError(f"No federation named {name!r} in this comparison; it has {names}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    @property
    def history(self) -> ComparedHistory:
        """Every federation's History, by name."""
        return ComparedHistory(
            {name: r.history for name, r in self._results.items() if r.history is not None}
        )

    def final(self) -> pd.DataFrame:
        """One row per federation: its last round's aggregated and server metrics.

        Raises
        ------
        MissingDependencyError
            If pandas is not installed.
        """
        table = self.history.to_pandas()
        if table.empty:
            return table
        last = table.groupby("federation", sort=False).tail(1).set_index("federation")
        columns = [c for c in last.columns if c.split(".")[0] in ("train", "evaluate", "server")]
        chosen: pd.DataFrame = last[["round", *columns]]
        return chosen

    def plot(self, metric: str | None = None) -> Figure:
        """Draw every federation's clients' ``metric`` into one figure: :func:`plot_compare`."""
        from fedlab.comparison.plot import plot_compare

        return plot_compare(self, metric)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k!r}: {r.rounds_completed} rounds" for k, r in self._results.items())
        return f"Comparison({{{parts}}})"


class _Tagged:
    """A federation's subscriber that hands its events to the comparison view, named."""

    def __init__(self, view: CompareView, name: str) -> None:
        self._view, self._name = view, name

    def __call__(self, event: Event) -> None:
        self._view.feed(self._name, event)

    def idle(self) -> None:
        self._view.idle()


def compare(
    federations: Mapping[str, Federation | Result] | Federation,
    *,
    strategies: Mapping[str, Strategy] | Sequence[Strategy] | None = None,
    configs: Mapping[str, ConfigSource] | None = None,
    datasets: Mapping[str, FederatedDataset] | None = None,
    rounds: int = 3,
    display: Display | None = None,
    view: CompareView | None = None,
) -> Comparison:
    """Run several federations on the same clients and split; show and return them together.

    ``fl.compare({"FedAvg": fed_a, "FedProx μ=0.1": fed_b}, rounds=10)`` runs each given
    federation; ``fl.compare(fed, strategies={"FedAvg": FedAvg(), "FedAdam": FedAdam()})``
    (or a list, named by class), ``configs={"lr=0.1": {...}, "lr=0.01": {...}}`` or
    ``datasets={"IID": fds_iid, "Dirichlet(0.1)": fds_skewed}`` (partitionings) runs
    variants of one federation that differ only in that (:meth:`Federation.variant`). A
    finished :class:`~fedlab.Result` may stand for a federation (a parent run and its
    :meth:`~fedlab.Federation.fork`): it is shown as it ended and returned as it is.

    The federations run one after another, in the order given; this is the only order.
    Sequential runs give each federation the whole machine (all the backend's workers and
    memory) while it trains, so its timings are its own, and each run is exactly
    ``fed.run(rounds)`` on its own: with a seed, every backend gives each federation the
    arrays and History it gives when run alone. Interleaving rounds would keep every
    federation's clients and workers alive at once for no difference in the results.

    In a notebook (``display`` "auto" or "widget") one live dashboard shows them all: the
    curves overlaid, one colour per federation with its p10–p90 band, each federation's
    heatmap, and a table of final metrics; it ends with a PNG of the curves, saved with
    the notebook. Elsewhere each federation shows its own display as ``fed.run()`` does.

    Parameters
    ----------
    federations
        Federations (or finished Results) by name, or one Federation to vary.
    strategies, configs, datasets
        With one Federation: the variants, by name (a new strategy object for each); one
        of the three.
    rounds
        The rounds each federation runs.
    display
        The comparison's display, as ``Federation(display=...)``; by default the first
        federation's.
    view
        Receive the events instead of the display (anything with ``feed(name, event)`` and
        ``idle()``, e.g. a :class:`~fedlab.dashboard.CompareDashboard` shown in advance).

    Raises
    ------
    FederationError
        If nothing is to be compared, the same object is given twice, or a federation's
        run fails (the message names the federation; the comparison stops there).
    """
    entries = _entries(federations, strategies, configs, datasets)
    chosen = display if display is not None else _first_display(entries)
    shown: CompareView | None = view if view is not None else _make_view(chosen, list(entries))
    results: dict[str, Result] = {}
    for name, entry in entries.items():
        if isinstance(entry, Result):
            if shown is not None and entry.history is not None:
                for event in entry.history.replay():
                    shown.feed(name, event)
            results[name] = entry
            continue
        results[name] = _run_one(name, entry, rounds, shown)
    if shown is not None:
        finish = getattr(shown, "finish", None)
        if callable(finish):
            finish()
    return Comparison(results)


def _run_one(name: str, federation: Federation, rounds: int, view: CompareView | None) -> Result:
    own = federation.display
    unsubscribe = None
    if view is not None:
        federation.display = "none"  # the comparison's view shows this run
        unsubscribe = federation.subscribe(_Tagged(view, name))
    try:
        return federation.run(rounds)
    except FederationError as exc:
        raise FederationError(f"The federation {name!r} of the comparison failed: {exc}") from exc
    finally:
        if unsubscribe is not None:
            unsubscribe()
        federation.display = own


def _entries(
    federations: Mapping[str, Federation | Result] | Federation,
    strategies: Mapping[str, Strategy] | Sequence[Strategy] | None,
    configs: Mapping[str, ConfigSource] | None,
    datasets: Mapping[str, FederatedDataset] | None,
) -> dict[str, Federation | Result]:
    given = sum(v is not None for v in (strategies, configs, datasets))
    if isinstance(federations, Federation):
        if given == 0:
            raise FederationError(
                "compare(fed) needs the variants to run: strategies={'FedAvg': FedAvg(), ...}, "
                "configs={'lr=0.1': {'lr': 0.1}, ...} or datasets={'IID': fds, ...}; or pass a "
                "dict of federations."
            )
        if given > 1:
            raise FederationError(
                "compare(fed) varies one thing at a time: give one of strategies=..., "
                "configs=... and datasets=...; for combinations pass a dict name -> Federation."
            )
        if strategies is not None:
            named = _named(strategies)
            return {n: federations.variant(strategy=s) for n, s in named.items()}
        if datasets is not None:
            return {n: federations.variant(dataset=d) for n, d in dict(datasets).items()}
        assert configs is not None
        return {n: federations.variant(config=c) for n, c in dict(configs).items()}
    if given:
        raise FederationError(
            "strategies=..., configs=... and datasets=... vary one Federation; with a dict of "
            "federations, build each federation with its own settings."
        )
    if not isinstance(federations, Mapping) or not federations:
        raise FederationError(
            f"compare() takes a non-empty dict name -> Federation, or one Federation with "
            f"strategies=... or configs=...; got {federations!r}."
        )
    entries: dict[str, Federation | Result] = {}
    for name, entry in federations.items():
        if not isinstance(entry, Federation | Result):
            raise FederationError(
                f"compare() got {type(entry).__name__} for {name!r}; give a Federation, or the "
                "Result of a finished run (e.g. a fork)."
            )
        entries[str(name)] = entry
    seen = [e for e in entries.values() if isinstance(e, Federation)]
    if len({id(f) for f in seen}) < len(seen):
        raise FederationError(
            "compare() got the same Federation object twice; use fed.variant(...) for a copy."
        )
    return entries


def _named(strategies: Mapping[str, Strategy] | Sequence[Strategy]) -> dict[str, Strategy]:
    if isinstance(strategies, Mapping):
        named = dict(strategies)
    else:
        named = {}
        for strategy in strategies:
            base = type(strategy).__name__
            name, n = base, 1
            while name in named:
                n += 1
                name = f"{base} ({n})"
            named[name] = strategy
    if not named:
        raise FederationError("compare(fed, strategies=...) got no strategies; give at least one.")
    if len({id(s) for s in named.values()}) < len(named):
        raise FederationError(
            "compare() got one strategy object for two variants; a strategy keeps the state of "
            "its run, so make a new one for each, e.g. [FedAvg(), FedAvg(...)]."
        )
    return named


def _first_display(entries: Mapping[str, Federation | Result]) -> Display:
    for entry in entries.values():
        if isinstance(entry, Federation):
            return entry.display
    return "auto"


def _make_view(display: Display, names: list[str]) -> CompareView | None:
    """The comparison's live notebook view, or None where each federation shows its own."""
    from fedlab.dashboard.display import in_notebook, resolve

    kind = resolve(display)
    if kind not in ("widget", "static") or not in_notebook():
        return None
    return _notebook_view(kind, names)


def _notebook_view(kind: str, names: list[str]) -> CompareView:
    from IPython.display import display

    if kind == "widget":
        try:
            from fedlab.dashboard.compare_widget import CompareDashboard
        except ImportError:  # anywidget missing: the PNG at the end instead
            pass
        else:
            view = CompareDashboard(names)
            display(view)  # type: ignore[no-untyped-call]
            return view
    from fedlab.dashboard.compare_widget import CompareSnapshot

    return CompareSnapshot()
