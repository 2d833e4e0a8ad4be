#!/usr/bin/env python3
"""Renders a Grafana dashboard JSON against a live Prometheus, without Grafana.

For every panel, each target's `expr` is run through Prometheus' /api/v1/query_range over
[--start, --end]; the results are drawn into one PNG laid out by the panels' `gridPos` (Grafana's
24-column grid), with the panel titles, units (`fieldConfig.defaults.unit`), legendFormat labels
and table-legend calcs (mean/max...). Time series panels become line charts; stat/gauge panels a
big number (last value of the first series). Prints one line per query: did it return data?
Exit status 1 if any query is invalid PromQL (Prometheus answered with an error).

    render.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX [--step 2] \
              [--rate-interval 10s] [--dashboard apigate-dashboard.json] [--out dashboard.png]

Grafana's own variables are substituted: $__rate_interval/$__interval/$__range from the flags, and
dashboard template variables with their current value (or `.*`). Anything else that looks like a
variable is left alone: `${1}` in label_replace is PromQL, not Grafana.
"""
import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

# Grafana's dark theme and classic palette, so the picture reads like the real dashboard.
BG, PANEL, BORDER, TEXT, DIM, GRID = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e8e", "#2c3235"
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9",
           "#705DA0", "#37872D", "#FADE2A", "#447EBC", "#C15C17"]
PX_PER_COL, PX_PER_ROW, DPI = 85, 44, 100  # 24 columns -> 2040 px wide
HEADER_PX = 70  # dashboard title and time window above the panels


def grafana_vars(dashboard, step, rate_interval, start, end):
    """Values for every variable this dashboard can use, longest name first."""
    values = {"__rate_interval": rate_interval, "__interval": f"{step:g}s",
              "__range": f"{int(end - start)}s", "__range_s": str(int(end - start))}
    for var in dashboard.get("templating", {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        values[var["name"]] = ".*" if current in (None, "", "$__all", "All") else str(current)
    return sorted(values.items(), key=lambda kv: -len(kv[0]))


def substitute(expr, variables):
    """Replaces $name and ${name} for the known variables only (so PromQL's ${1} survives)."""
    for name, value in variables:
        expr = expr.replace("${%s}" % name, value)
        expr = re.sub(r"\$%s(?![A-Za-z0-9_])" % re.escape(name), lambda _: value, expr)
    return expr


def query_range(base, expr, start, end, step):
    """(series, error): series as [(labels, [(t, v)])], error as Prometheus' message or None."""
    data = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step}).encode()
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query_range", data, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:  # 400/422: bad PromQL, with a JSON error body
        try:
            body = json.load(e)
        except ValueError:
            return [], f"HTTP {e.code}"
    if body.get("status") != "success":
        return [], f"{body.get('errorType')}: {body.get('error')}"
    return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]]) for s in body["data"]["result"]], None


def legend(fmt, labels, expr):
    """Grafana's legendFormat: {{label}} replaced, a missing label becomes empty."""
    if not fmt or fmt == "__auto":
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return f"{labels.get('__name__', '')}{{{inner}}}" if labels else expr
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def si(v, suffix, base=1000.0, units=("", "k", "M", "G", "T")):
    for u in units[:-1]:
        if abs(v) < base:
            return f"{v:.3g} {u}{suffix}".replace("  ", " ").strip()
        v /= base
    return f"{v:.3g} {units[-1]}{suffix}"


def fmt_unit(v, unit):
    """A value as Grafana would print it for the common units."""
    if v is None or not math.isfinite(v):
        return "-"
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if a < 1:
            return f"{v * 1e3:.3g} ms"
        return f"{v:.3g} s"
    if unit == "ms":
        return fmt_unit(v / 1000, "s")
    if unit == "percentunit":
        return f"{v * 100:.3g}%"
    if unit == "percent":
        return f"{v:.3g}%"
    if unit == "reqps":
        return si(v, "req/s")
    if unit in ("Bps", "bytes", "decbytes"):
        return si(v, "B/s" if unit == "Bps" else "B", 1024.0, ("", "Ki", "Mi", "Gi", "Ti"))
    return si(v, "")


CALCS = {  # Grafana reducer ids -> (column name, function over finite values)
    "mean": ("mean", lambda xs: sum(xs) / len(xs)), "max": ("max", max), "min": ("min", min),
    "lastNotNull": ("last", lambda xs: xs[-1]), "last": ("last", lambda xs: xs[-1]),
    "sum": ("total", sum),
}


def panel_box(fig, grid):
    """Figure-fraction rectangle of a gridPos (y grows downwards in Grafana)."""
    W, H = fig.get_size_inches() * DPI
    pad = 4
    x0 = grid["x"] * PX_PER_COL + pad
    y0 = HEADER_PX + grid["y"] * PX_PER_ROW + pad
    w = grid["w"] * PX_PER_COL - 2 * pad
    h = grid["h"] * PX_PER_ROW - 2 * pad
    return x0 / W, 1 - (y0 + h) / H, w / W, h / H


def series_style(panel, name, ref_id):
    """Unit, axis placement and colour of one series after the panel's fieldConfig.overrides."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    style = {"unit": defaults.get("unit", "short"),
             "axis": defaults.get("custom", {}).get("axisPlacement", "auto"), "color": None}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        opt = m.get("options")
        hit = ((m.get("id") == "byName" and opt == name) or (m.get("id") == "byFrameRefID" and opt == ref_id)
               or (m.get("id") == "byRegexp" and opt is not None and re.fullmatch(opt, name)))
        for prop in o.get("properties", []) if hit else []:
            if prop.get("id") == "unit":
                style["unit"] = prop["value"]
            elif prop.get("id") == "custom.axisPlacement":
                style["axis"] = prop["value"]
            elif prop.get("id") == "color" and prop["value"].get("fixedColor"):
                style["color"] = prop["value"]["fixedColor"]
    return style


def style_axis(ax, unit):
    for s in ax.spines.values():
        s.set_visible(False)
    ax.tick_params(colors=DIM, labelsize=9, length=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_unit(v, unit)))


def draw_panel(fig, panel, series, window, error=False):
    """Frame + title + chart (or big number) + table legend inside the panel's gridPos.

    series: [{"name", "ref", "points"}]. As in Grafana, a series whose unit differs from the
    first one (through an override) gets its own y axis on the right."""
    W, H = fig.get_size_inches() * DPI
    bx, by, bw, bh = panel_box(fig, panel["gridPos"])
    px = lambda v: v / W  # noqa: E731
    py = lambda v: v / H  # noqa: E731
    frame = fig.add_axes([bx, by, bw, bh])
    frame.set_xticks([])
    frame.set_yticks([])
    frame.set_facecolor(PANEL)
    for s in frame.spines.values():
        s.set_color(BORDER)
    frame.text(8 / (bw * W), 1 - 16 / (bh * H), panel.get("title", ""), color=TEXT, fontsize=12,
               fontweight="bold", va="center", transform=frame.transAxes)
    for i, s in enumerate(series):
        s.update(series_style(panel, s["name"], s["ref"]))
        s["color"] = s["color"] or PALETTE[i % len(PALETTE)]
        s["finite"] = [v for _, v in s["points"] if math.isfinite(v)]

    empty, empty_color = ("Query error", PALETTE[4]) if error else ("No data", DIM)
    if panel.get("type") in ("stat", "gauge", "singlestat"):
        s = series[0] if series and series[0]["finite"] else None
        frame.text(0.5, 0.45, fmt_unit(s["finite"][-1], s["unit"]) if s else empty,
                   color=s["color"] if s else empty_color, fontsize=40, fontweight="bold", ha="center",
                   va="center", transform=frame.transAxes)
        return

    calcs = [CALCS[c] for c in panel.get("options", {}).get("legend", {}).get("calcs", []) if c in CALCS]
    ncols = 2 if panel["gridPos"]["w"] >= 12 and len(series) > 4 else 1
    rows = math.ceil(len(series) / ncols) if series else 0
    line = 17  # px per legend row
    legend_h = (rows + 1) * line + 6 if series else 0
    # Left axis: the first unit not forced to the right; then any other unit (Grafana's order).
    units = list(dict.fromkeys([s["unit"] for s in series if s["axis"] != "right"] + [s["unit"] for s in series]))
    right = 78 if len(units) > 1 else 30
    top, left, bottom = 32, 78, 26 + legend_h
    ax = fig.add_axes([bx + px(left), by + py(bottom), bw - px(left + right), bh - py(top + bottom)])
    ax.set_facecolor(PANEL)
    ax.grid(color=GRID, linewidth=0.6)
    style_axis(ax, units[0] if units else "short")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_xlim(*(dt.datetime.fromtimestamp(t) for t in window))
    if not series:
        ax.text(0.5, 0.5, empty, color=empty_color, fontsize=16, ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    axes = {units[0]: ax}
    if len(units) > 1:  # Grafana supports more; two cover every dashboard here
        axes[units[1]] = ax.twinx()
        style_axis(axes[units[1]], units[1])
    for s in series:
        target = axes.get(s["unit"], ax)
        target.plot([dt.datetime.fromtimestamp(t) for t, _ in s["points"]], [v for _, v in s["points"]],
                    color=s["color"], linewidth=1.4)
        if s["axis"] == "hidden":
            target.set_yticks([])
    for unit, a in axes.items():
        a.set_ylim(bottom=min(0, a.get_ylim()[0]))
        if unit in ("Bps", "bytes", "decbytes"):  # ticks on round KiB/MiB, not round decimals
            lo, hi = a.get_ylim()
            scale = 1024 ** max(0, int(math.log(hi, 1024))) if hi > 0 else 1
            a.set_yticks([t * scale for t in MaxNLocator(6).tick_values(lo / scale, hi / scale)
                          if lo <= t * scale <= hi])
            a.set_ylim(lo, hi)

    # Table legend under the chart: name, then one column per calc, as Grafana's "table" mode.
    col_w = (bw * W - 16) / ncols
    val_w = 92  # px per value column: fits "0.0329 req/s"
    value_x = lambda col, j: bx + px(8 + col * col_w + col_w - 12 - (len(calcs) - j - 1) * val_w)  # noqa: E731
    y = by + py(legend_h)
    for c in range(ncols):
        for j, (label, _) in enumerate(calcs):
            fig.text(value_x(c, j), y, label, color=PALETTE[5], fontsize=9, ha="right", va="center")
    room = int((col_w - 30 - len(calcs) * val_w) / 6.2)  # characters that fit before the values
    for i, s in enumerate(series):
        c, r = divmod(i, rows)
        x, yy = bx + px(8 + c * col_w), y - py((r + 1) * line)
        fig.text(x, yy, "\u25ac", color=s["color"], fontsize=9, va="center")
        name = s["name"] if len(s["name"]) <= room else s["name"][: room - 1] + "\u2026"
        fig.text(x + px(20), yy, name, color=TEXT, fontsize=9, va="center")
        for j, (_, f) in enumerate(calcs):
            v = fmt_unit(f(s["finite"]), s["unit"]) if s["finite"] else "-"
            fig.text(value_x(c, j), yy, v, color=TEXT, fontsize=9, ha="right", va="center")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboard", default=os.path.join(here, "apigate-dashboard.json"))
    ap.add_argument("--start", type=float, required=True, help="unix seconds")
    ap.add_argument("--end", type=float, required=True, help="unix seconds")
    ap.add_argument("--step", type=float, default=2)
    ap.add_argument("--rate-interval", default="10s",
                    help="$__rate_interval; Grafana would pick max(step + scrape, 4 x scrape), 4s at a 1s "
                         "scrape: noisy, so the default smooths over 10s")
    ap.add_argument("--out", default="dashboard.png")
    ap.add_argument("--subtitle", default="")
    args = ap.parse_args()

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    variables = grafana_vars(dashboard, args.step, args.rate_interval, args.start, args.end)
    # Rows may hold their panels (collapsed rows); the row itself has no query.
    panels = []
    for p in dashboard.get("panels", []):
        panels += [p] if p.get("type") != "row" else p.get("panels", [])
    total_rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)

    fig = plt.figure(figsize=(24 * PX_PER_COL / DPI, (HEADER_PX + total_rows * PX_PER_ROW) / DPI), dpi=DPI,
                     facecolor=BG)
    W, H = fig.get_size_inches() * DPI
    window = (f"{dt.datetime.fromtimestamp(args.start):%Y-%m-%d %H:%M:%S} - "
              f"{dt.datetime.fromtimestamp(args.end):%H:%M:%S}")
    fig.text(6 / W, 1 - 22 / H, f"{dashboard.get('title', 'dashboard')}", color=TEXT, fontsize=18,
             fontweight="bold", va="center")
    fig.text(6 / W, 1 - 48 / H, f"{window}   step {args.step:g}s, $__rate_interval={args.rate_interval}   "
             f"{args.subtitle}", color=DIM, fontsize=10, va="center")

    failed = False
    rows = []
    for panel in panels:
        results, panel_error = [], False
        for i, target in enumerate(panel.get("targets", [])):
            if target.get("hide") or not target.get("expr"):
                continue
            expr = substitute(target["expr"], variables)
            series, error = query_range(args.prometheus, expr, args.start, args.end, args.step)
            failed |= error is not None
            panel_error |= error is not None
            ref = target.get("refId", chr(65 + i))
            results += [{"name": legend(target.get("legendFormat"), labels, expr), "ref": ref, "points": pts}
                        for labels, pts in series]
            values = [v for _, pts in series for _, v in pts if math.isfinite(v)]
            if error:
                status = f"ERROR {error}"
            elif not series:
                status = "no data"
            elif not values:
                status = f"data, {len(series)} series, all NaN"
            elif not any(values):
                status = f"data, {len(series)} series, all zero"
            else:
                status = f"data, {len(series)} series"
            rows.append((panel.get("title", ""), ref, status, expr))
        draw_panel(fig, panel, results, (args.start, args.end), panel_error)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=DPI, facecolor=BG)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'panel':{width}}  ref  result")
    for title, ref, status, expr in rows:
        print(f"{title:{width}}  {ref:3}  {status}\n{'':{width}}       {expr}")
    print(f"\nwrote {args.out} ({int(W)}x{int(H)} px)")
    if failed:
        print("some queries are invalid PromQL (see ERROR above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
