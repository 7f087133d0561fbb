"""Medians, ratios, targets, SVG plots and the generated section of docs/benchmarks.md.

Used by scripts/bench. Everything here is a pure function of docs/bench/results.jsonl: one run
id selects a `begin` record (machine, plan, commands), its `run` records (one JSON result from
the generator each) and its `end` record. A target's cell with any run that has ok=false is
FAILED, never a number. Python 3 standard library only.
"""

import json
import math
import statistics
from pathlib import Path

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
NAMES = {"stompbox": "Stompbox", "rabbitmq": "RabbitMQ Web-STOMP", "floor": "floor"}
COLOURS = {"stompbox": "#d95f02", "rabbitmq": "#7570b3", "floor": "#1b9e77"}

# The targets.
FANOUT_VS_RABBIT = 20.0
FANOUT_VS_FLOOR = 0.5
LATENCY_P99_VS_FLOOR = 2.0
LATENCY_CPU_VS_FLOOR = 2.0
QUEUE_VS_RABBIT = 10.0
CONN_TARGET_K = 19_000
CONN_MAX_KIB = 10.0
CONN_RATE_VS_FLOOR = 0.5


# --- reading and reducing ---------------------------------------------------------------------


def load(results, run_id):
    begin, end, runs = None, None, []
    for line in Path(results).read_text().splitlines():
        record = json.loads(line)
        if record.get("run_id") != run_id:
            continue
        if record["type"] == "begin":
            begin = record
        elif record["type"] == "end":
            end = record
        else:
            runs.append(record)
    if begin is None:
        raise SystemExit(f"no run {run_id} in {results}")
    return begin, end, runs


def lost(result):
    """Messages lost in a queue run, from whichever count the generator reports."""
    if "lost" in result:
        return result["lost"]
    if "sent" in result and "delivered" in result:
        return max(0, result["sent"] - result["delivered"])
    return None


METRICS = {
    "fanout": {"dps": lambda r: r.get("deliveries_per_s")},
    "latency": {"dps": lambda r: r.get("deliveries_per_s"),
                "p50": lambda r: (r.get("latency_us") or {}).get("p50"),
                "p99": lambda r: (r.get("latency_us") or {}).get("p99"),
                "cpu": lambda r: r.get("broker_cpu_per_s")},
    "topics": {"dps": lambda r: r.get("deliveries_per_s"), "lost": lost},
    "queue": {"dps": lambda r: r.get("deliveries_per_s"), "lost": lost},
    "connections": {"connected": lambda r: r.get("connected"),
                    "rate": lambda r: r.get("connects_per_s"),
                    "kib": lambda r: r.get("rss_per_conn_kib")},
}


def summarize(begin, runs):
    """{(scenario, cell): {target: {"status", "n", "errors", metric: median}}}."""
    table = {}
    for c in begin["cells"]:
        key = (c["scenario"], c["cell"])
        table[key] = {}
        for target, why in c.get("skipped", {}).items():
            table[key][target] = {"n": 0, "errors": [], "status": "over limit", "why": why}
        for target in c["targets"]:
            mine = [r["result"] for r in runs
                    if (r["scenario"], r["cell"], r["target"]) == (*key, target)]
            entry = {"n": len(mine), "errors": [r.get("error") for r in mine if not r.get("ok")]}
            if not mine or all(r.get("not_run") for r in mine):
                entry["status"] = "not run"
            elif entry["errors"]:
                entry["status"] = "FAILED"
            else:
                entry["status"] = "ok"
                for name, get in METRICS[c["scenario"]].items():
                    values = [get(r) for r in mine if get(r) is not None]
                    if name in ("lost",):
                        entry[name] = max(values) if values else None
                    elif name == "connected":
                        entry[name] = min(values) if values else None
                    else:
                        entry[name] = statistics.median(values) if values else None
            table[key][target] = entry
    return table


def compare(results, run_id):
    """A markdown table of this build's medians against the baseline build's (`--baseline`)."""
    begin, _end, runs = load(results, run_id)
    table = summarize(begin, runs)
    lines = [f"Run {run_id}: medians of {begin['runs']} run(s); ratio = this build / baseline.",
             "", "| scenario | cell | metric | this build | baseline | ratio |",
             "|---|---|---|---:|---:|---:|"]
    for (scenario, cell), targets in table.items():
        new, old = targets.get("stompbox", {}), targets.get("baseline", {})
        if new.get("status") != "ok" or old.get("status") != "ok":
            lines.append(f"| {scenario} | {cell} | - | {new.get('status')} | "
                         f"{old.get('status')} | - |")
            continue
        for metric in METRICS[scenario]:
            a, b = new.get(metric), old.get(metric)
            r = ratio(a, b)
            lines.append(f"| {scenario} | {cell} | {metric} | {num(a)} | {num(b)} | "
                         f"{'-' if r is None else f'{r:.3f}'} |")
    return "\n".join(lines)


def ratio(a, b):
    return a / b if a is not None and b else None


# --- formatting -------------------------------------------------------------------------------


def num(x, digits=3):
    """3 significant digits with a k/M suffix: 1.23 M, 45.6 k, 789."""
    if x is None:
        return "–"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(x) >= scale:
            return f"{x / scale:.{max(0, digits - len(str(int(abs(x) // scale))))}f}{suffix}"
    if x == int(x) and abs(x) >= 1:
        return f"{int(x)}"
    return f"{x:.{digits}g}"


def times(x):
    return "–" if x is None else f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def cellv(entry, name, fmt=num):
    if entry is None:
        return "–"
    if entry["status"] != "ok":
        return entry["status"]
    return fmt(entry.get(name))


def verdict(*checks):
    """'met' if every check is True; FAILED/– when a figure is missing."""
    if any(c == "FAILED" for c in checks):
        return "FAILED"
    if any(c is None for c in checks):
        return "–"
    return "met" if all(checks) else "**missed**"


def check(value, op, bound):
    if value is None:
        return None
    return value >= bound if op == ">=" else value <= bound


def failed_or(entry, fn):
    if entry is None or entry["status"] in ("not run", "over limit"):
        return None
    if entry["status"] != "ok":
        return "FAILED"
    return fn(entry)


def headline(scenario, result):
    """A one-line summary of one result for the progress log."""
    if scenario == "connections":
        return (f"{result.get('connected')} connected, {num(result.get('connects_per_s'))}/s, "
                f"{num(result.get('rss_per_conn_kib'))} KiB/conn")
    line = f"{num(result.get('deliveries_per_s'))} deliveries/s"
    lat = result.get("latency_us") or {}
    if lat:
        line += f", p50 {num(lat.get('p50'))} µs, p99 {num(lat.get('p99'))} µs"
    if result.get("broker_cpu_per_s") is not None:
        line += f", broker CPU {result['broker_cpu_per_s']:.2f} s/s"
    return line


# --- SVG --------------------------------------------------------------------------------------


def bar_chart(title, ylabel, groups, series):
    """Grouped bars on a log axis. groups: [(label, {series: value | "FAILED" | None})]."""
    left, right, top, bottom, bar, gap = 70, 20, 70, 64, 20, 24
    width = left + right + len(groups) * (len(series) * bar + gap)
    width = max(width, 480)
    height = 380
    plot_h = height - top - bottom
    values = [v for _, vs in groups for v in vs.values() if isinstance(v, (int, float)) and v > 0]
    # Room below the shortest bar too, so it does not sit on the axis.
    lo = 10 ** math.floor(math.log10(min(values) / 3)) if values else 1
    # Headroom above the tallest bar for its rotated value label.
    hi = 10 ** math.ceil(math.log10(max(values) * 3)) if values else 10
    hi = max(hi, lo * 10)

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) /
                               (math.log10(hi) - math.log10(lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{esc(title)}</text>',
           f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
           f'transform="rotate(-90 14 {top + plot_h / 2})">{esc(ylabel)} (log scale)</text>']
    decade = lo
    while decade <= hi * 1.0001:
        yy = y(decade)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                   f'{esc(decade_label(decade))}</text>')
        decade *= 10
    x = left + gap / 2
    for label, vs in groups:
        gx = x
        for s in series:
            v = vs.get(s)
            if isinstance(v, (int, float)) and v > 0:
                yy = y(max(v, lo))
                out.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="{bar - 2}" '
                           f'height="{top + plot_h - yy:.1f}" fill="{COLOURS[s]}">'
                           f'<title>{esc(NAMES[s])} {esc(label)}: {esc(num(v))}</title></rect>')
                out.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{yy - 3:.1f}" font-size="9" '
                           f'transform="rotate(-90 {x + bar / 2 - 1:.1f} {yy - 3:.1f})" '
                           f'dominant-baseline="middle">{esc(num(v))}</text>')
            elif v in ("FAILED", "over limit"):
                yy = top + plot_h - 4
                colour = "#c00" if v == "FAILED" else "#888"
                out.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{yy:.1f}" font-size="9" '
                           f'fill="{colour}" transform="rotate(-90 {x + bar / 2 - 1:.1f} {yy:.1f})" '
                           f'dominant-baseline="middle">{v}</text>')
            x += bar
        for row, part in enumerate(label.split("\n")):
            out.append(f'<text x="{(gx + x) / 2:.1f}" y="{top + plot_h + 14 + 12 * row}" '
                       f'text-anchor="middle" font-size="10">{esc(part)}</text>')
        x += gap
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
               f'y2="{top + plot_h}" stroke="#333"/>')
    lx = left
    for s in series:
        out.append(f'<rect x="{lx}" y="34" width="10" height="10" fill="{COLOURS[s]}"/>')
        out.append(f'<text x="{lx + 14}" y="43">{esc(NAMES[s])}</text>')
        lx += 24 + 7 * len(NAMES[s])
    out.append("</svg>")
    return "\n".join(out) + "\n"


def decade_label(value):
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{round(value / scale)}{suffix}"
    return f"{value:g}"


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot_value(entry, name):
    if entry is None or entry["status"] == "not run":
        return None
    if entry["status"] == "over limit":
        return "over limit"
    if entry["status"] != "ok":
        return "FAILED"
    return entry.get(name)


# --- markdown ---------------------------------------------------------------------------------


def section(begin, end, table, plots):
    m = begin["machine"]
    cells = begin["cells"]
    lines = [
        BEGIN,
        f"<!-- Generated by scripts/bench from docs/bench/results.jsonl (run {begin['run_id']}). "
        f"Do not edit: rerun the script, or `scripts/bench --report {begin['run_id']}`. -->",
        "",
        "## Stompbox, RabbitMQ Web-STOMP and the raw WebSocket floor",
        "",
        "**How to run the benchmarks.** `scripts/bench` (as root or the user that may run "
        "`rabbitmq-plugins`; it honours `CARGO_TARGET_DIR`) builds "
        "`stompbox` and the load generator `stompbox-bench` (crate `crates/bench`) in release "
        "mode, starts Stompbox on free loopback ports and the *floor* (`stompbox-bench floor`, a "
        "bare tokio-tungstenite server that forwards every WebSocket message verbatim to every "
        "other connection: what raw WebSocket fan-out costs on this machine), enables the "
        "`rabbitmq_web_stomp` plugin of the local RabbitMQ (ws://127.0.0.1:15674/ws, guest/guest) "
        "and runs every cell against the three targets in turn (Stompbox, RabbitMQ, floor, "
        "Stompbox, ...), `--runs` times each (default 3), giving the generator the target's pid so "
        "it reports that process's CPU time and RSS. Each result is appended to "
        "`docs/bench/results.jsonl`; this section and the plots are regenerated from it. "
        "`--only fanout,latency,topics,queue,connections` reruns part of it, `--quick` is a smoke run "
        "of a few seconds per scenario, `--report RUN_ID` redraws from stored results. The "
        "script stops everything it started and leaves RabbitMQ as it found it (plugin, queues). "
        "The machine is shared and noisy: read medians and ratios, not single figures.",
        "",
    ]
    if begin.get("quick"):
        lines += ["> **This is a `--quick` smoke run** (1 run per cell, 1 s runs, small cells): it "
                  "shows the script works end to end; its figures are not the benchmark.", ""]
    loads = " / ".join(f"{x:.2f}" for x in begin["loadavg"])
    loads_after = " / ".join(f"{x:.2f}" for x in end["loadavg"]) if end else "–"
    lines += [
        f"- **Run:** `{begin['run_id']}` ({begin['ts']}), `{begin['argv'].strip()}`, "
        f"{begin['runs']} run(s) per target and cell, medians over them"
        + (f"; the whole run took {end['minutes']} min." if end else "; **the run did not end**."),
        f"- **Machine:** {m['nproc']} CPUs (`nproc`), `lscpu` model \"{m['cpu_model']}\", "
        f"{m['ram_gib']} GiB RAM, Linux {m['kernel']}, {m['rustc']}, RabbitMQ {m['rabbitmq']}; "
        "generator, brokers and floor all on this machine, over loopback.",
        f"- **Load average** (1/5/15 min) before: {loads}; after: {loads_after}.",
        f"- **Targets:** `{begin['stompbox_cmd']}` (default configuration); "
        f"`{begin['floor_cmd']}`; RabbitMQ Web-STOMP with its default configuration.",
    ]
    rabbit = begin.get("rabbitmq")
    if rabbit:
        lines.append(
            f"- **RabbitMQ's file descriptors:** its process (beam.smp) has a soft limit of "
            f"{rabbit['pid_fd_soft_limit']} open files, from which RabbitMQ derives, at boot, a "
            f"limit of {rabbit.get('sockets_limit', '?')} sockets (`rabbitmq-diagnostics "
            "status`); past it new connections wait for a socket to close. This script cannot "
            "raise it: `prlimit --pid` on another user's process needs CAP_SYS_RESOURCE, which "
            "this machine does not grant, the limit is read when the node boots, and restarting "
            "the shared service under a higher `ulimit -n` would break the other tests that use "
            f"it. So RabbitMQ gets {rabbit['connections_cap']} connections (its limit less "
            f"{rabbit.get('sockets_used', 0)} in use and a margin) in the connection cells, and "
            "no 19,000 cell; nor the fan-out cells whose subscribers and publisher need more "
            "connections than that (shown as *over limit*).")
    lines.append("")
    lines += summary(cells, table)
    lines += fanout_table(cells, table, plots)
    lines += latency_table(cells, table, plots)
    lines += topics_table(cells, table)
    lines += queue_table(cells, table)
    lines += connections_table(cells, table, plots, begin["targets"])
    lines += commands(begin, table)
    lines += [END]
    return "\n".join(lines) + "\n"


def of(cells, scenario):
    return [c for c in cells if c["scenario"] == scenario]


def fanout_verdicts(table, c):
    t = table[("fanout", c["cell"])]
    sb, rb, fl = t.get("stompbox"), t.get("rabbitmq"), t.get("floor")
    vs_r = failed_or(sb, lambda e: failed_or(rb, lambda r: ratio(e["dps"], r["dps"])))
    vs_f = failed_or(sb, lambda e: failed_or(fl, lambda f: ratio(e["dps"], f["dps"])))
    return vs_r, vs_f


def latency_verdicts(table, c):
    t = table[("latency", c["cell"])]
    sb, fl = t.get("stompbox"), t.get("floor")
    p99 = failed_or(sb, lambda e: failed_or(fl, lambda f: ratio(e["p99"], f["p99"])))
    cpu = failed_or(sb, lambda e: failed_or(fl, lambda f: ratio(e["cpu"], f["cpu"])))
    return p99, cpu


def ok_ratio(r, op, bound):
    return r if r in ("FAILED", None) else check(r, op, bound)


def summary(cells, table):
    rows = []

    def count(name, results):
        met = sum(1 for r in results if r == "met")
        failed = sum(1 for r in results if r == "FAILED")
        missing = sum(1 for r in results if r == "–")
        text = f"met in **{met} of {len(results)}** cells"
        if failed:
            text += f", {failed} FAILED"
        if missing:
            text += f", {missing} without a figure"
        rows.append(f"- {name}: {text}.")

    fan = of(cells, "fanout")
    if fan:
        v = [fanout_verdicts(table, c) for c in fan]
        count(f"Fan-out ≥ {FANOUT_VS_RABBIT:g}× RabbitMQ Web-STOMP",
              [verdict(ok_ratio(a, ">=", FANOUT_VS_RABBIT)) for a, _ in v])
        count(f"Fan-out ≥ {FANOUT_VS_FLOOR:g}× the floor",
              [verdict(ok_ratio(b, ">=", FANOUT_VS_FLOOR)) for _, b in v])
    lat = of(cells, "latency")
    if lat:
        v = [latency_verdicts(table, c) for c in lat]
        count(f"Latency p99 ≤ {LATENCY_P99_VS_FLOOR:g}× the floor's",
              [verdict(ok_ratio(a, "<=", LATENCY_P99_VS_FLOOR)) for a, _ in v])
        count(f"Broker CPU ≤ {LATENCY_CPU_VS_FLOOR:g}× the floor's",
              [verdict(ok_ratio(b, "<=", LATENCY_CPU_VS_FLOOR)) for _, b in v])
    que = of(cells, "queue")
    if que:
        count(f"Queue ≥ {QUEUE_VS_RABBIT:g}× RabbitMQ Web-STOMP, nothing lost",
              [queue_verdict(table, c) for c in que])
    con = [c for c in of(cells, "connections") if c["params"]["K"] >= CONN_TARGET_K]
    if con:
        count(f"{CONN_TARGET_K:,} connections, ≤ {CONN_MAX_KIB:g} KiB each, "
              f"≥ {CONN_RATE_VS_FLOOR:g}× the floor's connect rate",
              [connections_verdict(table, c) for c in con])
    if not rows:
        return []
    return ["### Targets (from the issue)", ""] + rows + [""]


def fanout_table(cells, table, plots):
    fan = of(cells, "fanout")
    if not fan:
        return []
    lines = ["### Fan-out: deliveries/s, one publisher, unthrottled", "",
             "P = 1 publisher on one `/topic`, S subscribers, B-byte bodies, each run "
             f"{duration(fan[0])} s long; deliveries/s = messages received by all subscribers "
             "/ time. Median of the runs.", "",
             "| S | B | Stompbox | RabbitMQ | floor | Stompbox ÷ RabbitMQ | Stompbox ÷ floor "
             f"| ≥ {FANOUT_VS_RABBIT:g}× RabbitMQ | ≥ {FANOUT_VS_FLOOR:g}× floor |",
             "|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for c in fan:
        t = table[("fanout", c["cell"])]
        vs_r, vs_f = fanout_verdicts(table, c)
        lines.append(
            f"| {c['params']['S']:,} | {c['params']['B']:,} | {cellv(t.get('stompbox'), 'dps')} "
            f"| {cellv(t.get('rabbitmq'), 'dps')} | {cellv(t.get('floor'), 'dps')} "
            f"| {show_ratio(vs_r)} | {show_ratio(vs_f)} "
            f"| {verdict(ok_ratio(vs_r, '>=', FANOUT_VS_RABBIT))} "
            f"| {verdict(ok_ratio(vs_f, '>=', FANOUT_VS_FLOOR))} |")
    lines += ["", f"![Fan-out and queue deliveries/s]({plots['throughput']})", ""]
    return lines


def show_ratio(r):
    return r if r == "FAILED" else times(r)


def duration(c):
    args = c.get("args", [])
    return args[args.index("--duration") + 1] if "--duration" in args else "?"


def latency_table(cells, table, plots):
    lat = of(cells, "latency")
    if not lat:
        return []
    lines = ["### Latency and CPU at 10,000 deliveries/s offered", "",
             "One publisher at the given rate to S subscribers (64-byte bodies), so every cell "
             "offers rate × S = 10,000 deliveries/s. Latency is publish-to-receive, in µs; CPU is "
             "the target process's CPU seconds per second of the run. Medians of the runs.", "",
             "| S | rate | p50 / p99 Stompbox | p50 / p99 RabbitMQ | p50 / p99 floor "
             "| p99 ÷ floor | CPU Stompbox | CPU RabbitMQ | CPU floor | CPU ÷ floor "
             f"| p99 ≤ {LATENCY_P99_VS_FLOOR:g}× floor | CPU ≤ {LATENCY_CPU_VS_FLOOR:g}× floor |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for c in lat:
        t = table[("latency", c["cell"])]

        def pp(e):
            if e is None:
                return "–"
            if e["status"] != "ok":
                return e["status"]
            return f"{num(e.get('p50'))} / {num(e.get('p99'))}"

        def cpu(e):
            return cellv(e, "cpu", lambda x: "–" if x is None else f"{x:.2f}")

        p99, cpu_r = latency_verdicts(table, c)
        lines.append(
            f"| {c['params']['S']:,} | {c['params']['rate']:,}/s | {pp(t.get('stompbox'))} "
            f"| {pp(t.get('rabbitmq'))} | {pp(t.get('floor'))} | {show_ratio(p99)} "
            f"| {cpu(t.get('stompbox'))} | {cpu(t.get('rabbitmq'))} | {cpu(t.get('floor'))} "
            f"| {show_ratio(cpu_r)} | {verdict(ok_ratio(p99, '<=', LATENCY_P99_VS_FLOOR))} "
            f"| {verdict(ok_ratio(cpu_r, '<=', LATENCY_CPU_VS_FLOOR))} |")
    lines += ["", f"![Latency p99]({plots['latency']})", ""]
    return lines


def topics_table(cells, table):
    tops = of(cells, "topics")
    if not tops:
        return []
    lines = ["### Many topics", "",
             "N subscribers, each on its own `/topic`, P publishers spraying across them (message "
             "i of publisher p goes to topic (p + i) mod N), unthrottled; deliveries/s as above, "
             "lost the largest over the runs. The issue sets no target here; the floor has no "
             "topics, so it has no column.", "",
             "| N | P | B | Stompbox | RabbitMQ | Stompbox ÷ RabbitMQ | lost Stompbox "
             "| lost RabbitMQ |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in tops:
        t = table[("topics", c["cell"])]
        sb, rb = t.get("stompbox"), t.get("rabbitmq")
        r = failed_or(sb, lambda e: failed_or(rb, lambda q: ratio(e["dps"], q["dps"])))
        lines.append(
            f"| {c['params']['N']:,} | {c['params']['P']} | {c['params']['B']:,} "
            f"| {cellv(sb, 'dps')} | {cellv(rb, 'dps')} | {show_ratio(r)} "
            f"| {cellv(sb, 'lost')} | {cellv(rb, 'lost')} |")
    return lines + [""]


def queue_verdict(table, c):
    t = table[("queue", c["cell"])]
    sb, rb = t.get("stompbox"), t.get("rabbitmq")
    r = failed_or(sb, lambda e: failed_or(rb, lambda q: ratio(e["dps"], q["dps"])))
    none_lost = failed_or(sb, lambda e: None if e.get("lost") is None else e["lost"] == 0)
    return verdict(ok_ratio(r, ">=", QUEUE_VS_RABBIT), none_lost)


def queue_table(cells, table):
    que = of(cells, "queue")
    if not que:
        return []
    lines = ["### Queue: competing consumers", "",
             "P producers send to one `/queue`, C consumers share it (client acknowledgements); "
             "deliveries/s as above; lost = sent − delivered, the largest over the runs. The "
             "floor has no queues, so it has no column.", "",
             "| P | C | B | Stompbox | RabbitMQ | Stompbox ÷ RabbitMQ | lost Stompbox "
             f"| lost RabbitMQ | ≥ {QUEUE_VS_RABBIT:g}× RabbitMQ, none lost |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for c in que:
        t = table[("queue", c["cell"])]
        sb, rb = t.get("stompbox"), t.get("rabbitmq")
        r = failed_or(sb, lambda e: failed_or(rb, lambda q: ratio(e["dps"], q["dps"])))
        lines.append(
            f"| {c['params']['P']} | {c['params']['C']} | {c['params']['B']:,} "
            f"| {cellv(sb, 'dps')} | {cellv(rb, 'dps')} | {show_ratio(r)} "
            f"| {cellv(sb, 'lost')} | {cellv(rb, 'lost')} | {queue_verdict(table, c)} |")
    return lines + [""]


def connections_verdict(table, c):
    t = table[("connections", c["cell"])]
    sb, fl = t.get("stompbox"), t.get("floor")
    all_in = failed_or(sb, lambda e: None if e.get("connected") is None
                       else e["connected"] >= c["params"]["K"])
    small = failed_or(sb, lambda e: check(e.get("kib"), "<=", CONN_MAX_KIB))
    fast = failed_or(sb, lambda e: failed_or(
        fl, lambda f: check(ratio(e.get("rate"), f.get("rate")), ">=", CONN_RATE_VS_FLOOR)))
    return verdict(all_in, small, fast)


def connections_table(cells, table, plots, targets_run):
    con = of(cells, "connections")
    if not con:
        return []
    lines = ["### Connections: idle WebSocket connections, one subscription each", "",
             "K connections opened (from several loopback source addresses), each subscribed "
             "once, then held idle; rate = connections completed (CONNECTED and subscribed) per "
             "second; KiB = growth of the target's RSS / K. Stompbox and the floor are "
             "started afresh for every connection run (a process that held more connections "
             "before reuses their freed memory and shows almost no growth); the shared RabbitMQ "
             "node cannot be, so its figure is growth over whatever it held before. "
             f"The targets apply to the {CONN_TARGET_K:,} cell; the smaller one compares all "
             "three.", "",
             "| K | Stompbox connected | /s | KiB/conn | RabbitMQ connected of its cap | /s "
             "| KiB/conn | floor connected | /s | KiB/conn | Stompbox rate ÷ floor "
             f"| all, ≤ {CONN_MAX_KIB:g} KiB, ≥ {CONN_RATE_VS_FLOOR:g}× floor rate |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for c in con:
        t = table[("connections", c["cell"])]
        sb, rb, fl = t.get("stompbox"), t.get("rabbitmq"), t.get("floor")
        r = failed_or(sb, lambda e: failed_or(fl, lambda f: ratio(e.get("rate"), f.get("rate"))))
        rabbit_k = c.get("rabbit_K")
        rb_conn = cellv(rb, "connected", lambda x: f"{x:,}")
        if rb is not None and rabbit_k is not None:
            rb_conn += f" of {rabbit_k:,}"
        elif rb is None and "rabbitmq" in targets_run:
            rb_conn = "over limit"
        target = (connections_verdict(table, c) if c["params"]["K"] >= CONN_TARGET_K
                  else "(comparison)")
        kib = lambda e: cellv(e, "kib", lambda x: "–" if x is None else f"{x:.1f}")  # noqa: E731
        conn = lambda e: cellv(e, "connected", lambda x: f"{x:,}")  # noqa: E731
        lines.append(
            f"| {c['params']['K']:,} | {conn(sb)} | {cellv(sb, 'rate')} | {kib(sb)} "
            f"| {rb_conn} | {cellv(rb, 'rate')} | {kib(rb)} "
            f"| {conn(fl)} | {cellv(fl, 'rate')} | {kib(fl)} | {show_ratio(r)} | {target} |")
    lines += ["", f"![Connection rate]({plots['connections']})", ""]
    return lines


def commands(begin, table):
    lines = ["### Commands and failures", "",
             "Every generator command of the first run of each cell (`<pid>` is the target's "
             "process id, given so the generator reads that process's CPU and RSS):", "",
             "<details><summary>commands</summary>", "", "```"]
    lines += [begin["argv"].strip(),
              f"{begin['stompbox_cmd']}   # Stompbox, RUST_LOG=warn,stompbox_server::server=info",
              f"{begin['floor_cmd']}   # the floor", ""]
    for c in begin["cells"]:
        lines.append(f"# {c['scenario']} {c['cell']}")
        lines += [cmd for (scenario, cell, _), cmd in begin.get("_commands", {}).items()
                  if (scenario, cell) == (c["scenario"], c["cell"])]
    lines += ["```", "", "</details>", ""]
    errors = []
    for (scenario, cell), targets in table.items():
        for target, entry in targets.items():
            for err in dict.fromkeys(e for e in entry["errors"] if e):
                errors.append(f"- {scenario} {cell}, {NAMES[target]}: {err}")
    if errors:
        lines += ["Failures (a FAILED cell had at least one run with `ok: false`):", ""]
        lines += errors + [""]
    return lines


# --- entry ------------------------------------------------------------------------------------


def write(results, run_id, root):
    root = Path(root)
    begin, end, runs = load(results, run_id)
    seen = {}
    for r in runs:
        if r.get("cmd") and (r["scenario"], r["cell"], r["target"]) not in seen:
            seen[(r["scenario"], r["cell"], r["target"])] = r["cmd"]
    begin["_commands"] = seen
    table = summarize(begin, runs)
    plots = {"throughput": "bench/throughput.svg", "latency": "bench/latency.svg",
             "connections": "bench/connections.svg"}
    cells = begin["cells"]
    series = [t for t in ("stompbox", "rabbitmq", "floor") if t in begin["targets"]]

    groups = [(f"fan-out\nS={c['params']['S']}\nB={c['params']['B']}",
               {t: plot_value(table[("fanout", c["cell"])].get(t), "dps") for t in series})
              for c in of(cells, "fanout")]
    groups += [(f"queue P=2 C=4\nB={c['params']['B']}",
                {t: plot_value(table[("queue", c["cell"])].get(t), "dps") for t in series})
               for c in of(cells, "queue")]
    out = root / "docs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    if groups:
        (out / "throughput.svg").write_text(bar_chart(
            f"Deliveries/s, median of {begin['runs']} run(s) (run {run_id})",
            "deliveries/s", groups, series))
    lat = [(f"S={c['params']['S']}\n{c['params']['rate']:,}/s",
            {t: plot_value(table[("latency", c["cell"])].get(t), "p99") for t in series})
           for c in of(cells, "latency")]
    if lat:
        (out / "latency.svg").write_text(bar_chart(
            f"Latency p99 at 10,000 deliveries/s offered (run {run_id})", "p99 µs", lat, series))
    con = [(f"K={c['params']['K']:,}",
            {t: plot_value(table[("connections", c["cell"])].get(t), "rate") for t in series})
           for c in of(cells, "connections")]
    if con:
        (out / "connections.svg").write_text(bar_chart(
            f"Connections per second (run {run_id})", "connections/s", con, series))

    doc = root / "docs" / "benchmarks.md"
    text = doc.read_text()
    generated = section(begin, end, table, plots)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated.rstrip("\n") + rest.split(END, 1)[1]
    else:
        at = text.find("\n## ")
        at = len(text) if at < 0 else at + 1
        text = text[:at] + generated + "\n" + text[at:]
    doc.write_text(text)
