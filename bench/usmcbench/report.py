"""Results: collected per step, summarised (medians, spread, ratios, targets)
and written as a console table, a JSON file, a PNG chart and the table in
docs/BENCHMARKS.md."""

import json
import os
import statistics
import subprocess

from .model import COLUMNS, COLUMN_TITLES, fmt
from .procs import which

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


class Results:
    def __init__(self):
        self.benches = []
        self.values = {}  # (key, column) -> [value per repetition]
        self.notes = {}   # (key, column) -> why there is no value
        self.errors = []
        self.runs = []
        self.skipped = []

    def add_bench(self, bench):
        self.benches.append(bench)

    def add(self, bench, variant, rep, values, seconds):
        for cell, value in values.items():
            self.values.setdefault(cell, []).append(value)
        self.runs.append({"benchmark": bench.name, "variant": variant,
                          "repetition": rep, "seconds": round(seconds, 3),
                          "values": {f"{k}/{c}": v
                                     for (k, c), v in values.items()}})

    def fail(self, bench, variant, rep, message):
        self.errors.append({"benchmark": bench.name, "variant": variant,
                            "repetition": rep, "error": message})
        for cell in bench.cells(variant):
            self.notes.setdefault(cell, f"error: {message}")

    def note(self, bench, variant, text):
        for cell in bench.cells(variant):
            self.notes[cell] = text

    def skip(self, bench, reason):
        self.skipped.append({"benchmark": bench.name, "reason": reason})

    def rows(self):
        """One summary dict per metric of every benchmark that ran."""
        out = []
        for bench in self.benches:
            for metric in bench.metrics:
                out.append(self._row(metric))
        return out

    def _row(self, metric):
        columns = {}
        for col in COLUMNS:
            vals = self.values.get((metric.key, col), [])
            entry = {"values": vals, "note": self.notes.get((metric.key, col))}
            if vals:
                entry.update(median=statistics.median(vals), min=min(vals),
                             max=max(vals))
            columns[col] = entry
        usmc = columns["usmc"].get("median")
        tcp = columns["tcp"].get("median")
        met = metric.target.met(usmc, tcp) if metric.target else None
        return {"key": metric.key, "label": metric.label, "unit": metric.unit,
                "higher_better": metric.higher_better, "chart": metric.chart,
                "target": (None if not metric.target else
                           {"kind": metric.target.kind,
                            "value": metric.target.value,
                            "text": metric.target.text}),
                "columns": columns, "ratio": ratio(usmc, tcp),
                "unix_ratio": ratio(columns["unix"].get("median"), tcp),
                "met": met}


def ratio(a, b):
    return a / b if a is not None and b else None


def cell_text(entry, short_errors):
    if "median" in entry:
        text = fmt(entry["median"])
        if len(entry["values"]) > 1:
            text += f" ({fmt(entry['min'])}–{fmt(entry['max'])})"
        if (entry["note"] or "").startswith("error"):
            text += " (some runs failed)"
        return text
    note = entry["note"]
    if not note:
        return "—"
    if short_errors and note.startswith("error"):
        return "error (see below)"
    return note


def met_text(row):
    if not row["target"]:
        return "—"
    return {True: "yes", False: "**no**", None: "n/a"}[row["met"]]


def table_rows(rows, short_errors):
    header = ["benchmark", "unit"] + [COLUMN_TITLES[c] for c in COLUMNS] + [
        "usmc/TCP", "target (usmc/TCP)", "met"]
    body = []
    for row in rows:
        target = row["target"]["text"] if row["target"] else "—"
        r = row["ratio"]
        body.append([row["label"], row["unit"]] +
                    [cell_text(row["columns"][c], short_errors)
                     for c in COLUMNS] +
                    [f"{r:.3g}" if r is not None else "—", target,
                     met_text(row)])
    return header, body


def console_table(rows):
    header, body = table_rows(rows, short_errors=True)
    body = [[c.replace("**", "") for c in line] for line in body]
    widths = [max(len(line[i]) for line in [header] + body)
              for i in range(len(header))]
    widths[0] = min(widths[0], 52)
    lines = []
    for line in [header] + body:
        cells = [c if len(c) <= w or i > 0 else c[:w - 1] + "…"
                 for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(l.rstrip() for l in lines)


def markdown_section(rows, results, meta):
    header, body = table_rows(rows, short_errors=True)
    lines = [BEGIN,
             f"Command: `{meta['command']}`  ",
             f"Date: {meta['date']} · {meta['repetitions']} repetition(s): "
             "median, (min–max) when more than one  ",
             f"Machine: {meta['machine']['summary']}; 1-min load average "
             f"{meta['load_average'][0]} before, {meta['load_average'][1]} "
             "after (other work on the machine shows here)  ",
             f"Pinning: {meta['pinning']}  ",
             f"usmc: {meta['usmc']}",
             "",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    for skipped in results.skipped:
        lines.append(f"\nNot run: {skipped['benchmark']}: {skipped['reason']}")
    for err in results.errors:
        lines.append(f"\nError: {err['benchmark']} ({err['variant']}, "
                     f"repetition {err['repetition']}): {err['error']}")
    lines.append(END)
    return "\n".join(lines)


def write_docs(path, section):
    """Replaces the text between the markers; False if they are missing."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    text = text[:start] + section + text[end + len(END):]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


def write_json(path, rows, results, meta):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = dict(meta, metrics=rows, skipped=results.skipped,
               errors=results.errors, runs=results.runs)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


GNUPLOT = """\
set terminal pngcairo size 1200,650 font "sans,10"
set output '{png}'
set title "Median ratio to kernel TCP loopback ({subtitle})\\n\
bars start at 1 (parity); throughput: higher is better; \
latency: lower is better"
set datafile separator "\\t"
set logscale y
set yrange [{ymin}:{ymax}]
set grid ytics
set xtics rotate by -30 scale 0 font ",9"
set xrange [-0.6:{xmax}]
set style fill solid 0.85 border -1
set key top left
lo(v) = v < 1 ? v : 1
hi(v) = v < 1 ? 1 : v
plot '{data}' using ($0-0.19):(1):($0-0.36):($0-0.02):(lo($2)):(hi($2)):\\
       xtic(1) \\
       with boxxyerror lc rgb '#1f77b4' title 'usmc / TCP', \\
     '' using ($0+0.19):(1):($0+0.02):($0+0.36):(lo($3)):(hi($3)) \\
       with boxxyerror lc rgb '#aaaaaa' title 'Unix / TCP', \\
     '' using ($0-0.19):4 with points pt 9 ps 1.6 lc rgb '#d62728' \\
       title 'target (usmc / TCP)', \\
     1 with lines lc rgb 'black' dt 2 notitle
"""


def write_chart(png, rows, tmpdir, subtitle):
    """Draws the chart; returns a message saying what happened."""
    gnuplot = which("gnuplot")
    if not gnuplot:
        return "chart skipped: gnuplot not found (apt-get install gnuplot-nox)"
    # Absolute targets (idle CPU, memory) have no meaningful ratio.
    charted = [r for r in rows if r["chart"] and
               (r["ratio"] or r["unix_ratio"]) and
               not (r["target"] and r["target"]["kind"] == "below")]
    if not charted:
        return "chart skipped: no ratio to TCP was measured"
    data = os.path.join(tmpdir, "chart.tsv")
    seen = []
    with open(data, "w", encoding="utf-8") as f:
        for r in charted:
            target = r["target"]["value"] if r["target"] else None
            vals = [r["ratio"], r["unix_ratio"], target]
            seen += [v for v in vals if v]
            f.write("\t".join([r["chart"]] + [f"{v:.6g}" if v else "NaN"
                                              for v in vals]) + "\n")
    script = GNUPLOT.format(png=png, data=data, subtitle=subtitle,
                            ymin=min(seen + [1]) / 2, ymax=max(seen + [1]) * 2,
                            xmax=len(charted) - 0.4)
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    proc = subprocess.run([gnuplot], input=script, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        return f"chart failed: {proc.stderr.strip()[-300:]}"
    return f"chart: {png}"
