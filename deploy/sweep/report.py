"""``psqs report SWEEP_DIR``: the sweep's results table, figures and one self-contained HTML page.

Written into ``--out`` (default ``SWEEP_DIR/report``) as one artifact (kind :data:`KIND`), staged
in a temporary directory and renamed, so a report being read is never half written::

    results.csv, results.parquet   one row per checkpoint and stage (psqs.deploy.sweep.results)
    points.csv                     the figures' points: means and standard deviations over seeds
    figures/<name>.png             each figure the sweep has data for
    index.html                     the page: figures embedded (no file or network reference), the
                                   headline, the failed units, the data-source and anchors notes
    summary.json                   the headline and what was drawn or not, for scripts

A report can be drawn at any time, during a sweep or after it: it reads only the directory. An
earlier report (a :data:`KIND` artifact) at ``--out`` is replaced; anything else only with
``--force`` and only if psqs wrote it (:func:`psqs.common.artifact.staged_directory`).
"""
from __future__ import annotations

import argparse
import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path

from psqs.common.artifact import ArtifactError, peek_kind, staged_directory, write_manifest

from . import published
from .layout import SweepDir

# pandas, matplotlib and the stage modules (.results, .figures) are imported when a report is
# written, not when the psqs command line registers this subcommand

KIND = "psqs.sweep.report"
FORMAT_VERSION = 1
FIGURES_DIR = "figures"




def _replace_existing(out: Path, force: bool) -> bool:
    """An earlier report is replaced without ``--force`` (rerunning the report is routine); any
    other existing ``out`` needs ``--force`` and the artifact rules of staged_directory."""
    if out.is_dir() and not out.is_symlink():
        try:
            return force or peek_kind(out) == KIND
        except ArtifactError:
            return force
    return force


def write(sweep_dir, out=None, force: bool = False) -> dict:
    """Collect the table, draw the figures, write the report to ``out``; return its summary."""
    from . import figures, results

    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else SweepDir(sweep_dir).report_dir
    table = results.collect(sweep_dir)
    if not (table["stage"] == "model").any():
        counts = results.states(sweep_dir)
        raise results.ResultsError(f"{sweep_dir}: no checkpoint has been written yet ({counts['done']} done, "
                                   f"{counts['running']} running, {counts['failed']} failed, {counts['todo']} to do); "
                                   "nothing to report")
    points = results.aggregate(table)
    head = results.headline(points)
    failed = results.failures(sweep_dir)
    counts = results.states(sweep_dir)
    sources = sorted(table["data_source"].dropna().unique().tolist())
    with staged_directory(out, force=_replace_existing(out, force)) as tmp:
        table.to_csv(tmp / "results.csv", index=False)
        table.to_parquet(tmp / "results.parquet", index=False)
        points.to_csv(tmp / "points.csv", index=False)
        drawn = figures.draw_all(table, points, tmp / FIGURES_DIR)
        summary = {
            "sweep": str(sweep_dir.resolve()), "report": str(out.resolve()),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "units": counts, "rows": int(len(table)), "checkpoints": int((table["stage"] == "model").sum()),
            "points": int(len(points)), "headline": head,
            "figures": [f.file for f in drawn if f.file],
            "skipped_figures": {f.name: f.skipped for f in drawn if f.skipped},
            "failures": failed, "data_sources": sources,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / "index.html").write_text(page(summary, table, points, drawn, tmp))
        write_manifest(tmp, KIND, FORMAT_VERSION, {"sweep": summary["sweep"], "headline": head["text"],
                                                   "figures": summary["figures"]})
    return summary


# -- the page --------------------------------------------------------------------------------------

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 6px}
th{background:#eee}img{max-width:100%;border:1px solid #ddd}.note{background:#f6f6e8;padding:0.5em 1em}
.headline{font-size:1.1em;font-weight:bold}"""


def _table_html(frame) -> str:
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def _data_note(sources: list[str]) -> str:
    listed = ", ".join(html.escape(s) for s in sources) or "none recorded"
    real = [s for s in sources if s.startswith("openml:")]
    verdict = ("Only openml:42468 is the published hls4ml data set." if real else
               "None of these is the published hls4ml data set (OpenML 42468).")
    return (f"<p class='note'>Data the sweep trained and tested on: {listed}. {verdict} "
            f"{html.escape(published.SPLIT_NOTE)}</p>")


def page(summary: dict, table, points, drawn, root: Path) -> str:
    """index.html: every image embedded as base64, no reference to any other file or site."""
    import pandas as pd

    from . import results

    e = html.escape
    counts = summary["units"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>psqs sweep report</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>psqs sweep report</h1><p>{e(summary['sweep'])}, {e(summary['created_utc'])}: "
        f"{counts['done']} units done, {counts['running']} running, {counts['failed']} failed, {counts['todo']} to do; "
        f"{summary['checkpoints']} checkpoints, {summary['rows']} table rows (results.csv, results.parquet; "
        f"the figures' points in points.csv).</p>",
        f"<p class='headline'>{e(summary['headline']['text'])}</p>",
        f"<p>Rule: {e(summary['headline']['rule'])}. {e(published.PAPER_HEADLINE)}.</p>",
        _data_note(summary["data_sources"]),
        "<h2>Provenance labels</h2><ul>",
        *(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in results.SOURCES.items()),
        "</ul>",
    ]
    for fig in drawn:
        if fig.file:
            data = base64.b64encode((root / fig.file).read_bytes()).decode("ascii")
            parts += [f"<h2>{e(fig.title)}</h2>", f"<img alt='{e(fig.name)}' src='data:image/png;base64,{data}'>",
                      f"<p>{e(fig.caption)}</p>"]
    skipped = [f for f in drawn if f.skipped]
    if skipped:
        parts += ["<h2>Figures not drawn</h2><ul>", *(f"<li>{e(f.title)}: {e(f.skipped)}</li>" for f in skipped),
                  "</ul>"]
    front = points[points["pareto"]].sort_values("bops_mean")
    keep = ["family", "method", "bits", "step", "trial", "sparsity_target", "widths", "n_seeds", "accuracy_mean",
            "accuracy_std", "bops_mean", "auc_macro_mean", "eta_n_mean"]
    parts += ["<h2>Pareto front (clean labels)</h2>", _table_html(front[keep])]
    hardware = table[table["stage"] != "model"]
    if not hardware.empty:
        cols = ["stage", "method", "bits", "seed", "step", "sparsity_target", "accuracy", "stage_accuracy", "exact",
                *results.STAGE_COLUMNS[2:]]
        parts += ["<h2>Stage results</h2>", _table_html(hardware[cols])]
    parts += ["<h2>Failed units</h2>"]
    if summary["failures"]:
        parts.append(_table_html(pd.DataFrame(summary["failures"])[["unit", "key", "type", "error", "log"]]))
    else:
        parts.append("<p>None.</p>")
    anchors = pd.DataFrame([{"result": a.name, "accuracy %": 100 * a.accuracy, "LUT": a.lut,
                             "LUT from": a.lut_source, "split": a.split, "source": a.citation,
                             "status": published.LABEL} for a in published.ANCHORS])
    parts += ["<h2>Published anchors</h2>",
              f"<p class='note'>Drawn on the accuracy-vs-BOPs and accuracy-vs-LUT figures, each labelled "
              f"&quot;{e(published.LABEL)}&quot;. {e(published.SPLIT_NOTE)} Results without a LUT count are "
              "drawn as accuracy levels only.</p>", _table_html(anchors), "</body></html>"]
    return "\n".join(parts) + "\n"


# -- command line ----------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="a sweep's results table, figures and HTML page",
        description="Read a sweep directory (during the sweep or after it) and write its results table "
                    "(CSV, Parquet), the paper's figures (PNG) and one self-contained HTML page.")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep directory (psqs sweep run)")
    p.add_argument("--out", default=None, help="report directory (default SWEEP_DIR/report; an earlier report "
                                               "there is replaced)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is not an earlier report (a psqs artifact or empty directory)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    summary = write(Path(args.sweep_dir), args.out, force=args.force)
    print(summary["headline"]["text"])
    drawn, skipped = len(summary["figures"]), len(summary["skipped_figures"])
    failed = len(summary["failures"])
    print(f"report     {summary['report']}/index.html  ({summary['rows']} rows, {summary['points']} points, "
          f"{drawn} figures, {skipped} not drawn, {failed} failed unit(s))")
    print(f"table      {summary['report']}/results.csv, results.parquet")
    return 0
