"""Print the figures file of a reliability run as the Markdown tables of ``RELIABILITY.md``.

.venv/bin/python -m tests.reliability.report [.reliability/figures-full.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

JOB_COLUMNS = [
    ("jobs", "jobs"),
    ("started_posts_sent", "`started` sent"),
    ("started_posts_accepted", "`started` accepted"),
    ("started_duplicates", "dup. starts"),
    ("overlaps", "overlaps"),
    ("final_events", "final events"),
    ("final_event_duplicates", "dup. finals"),
    ("item_reports", "items reported"),
    ("item_report_duplicates", "dup. item reports"),
    ("journal_duplicates", "journal dups"),
    ("max_attempts", "max attempts"),
    ("requests", "requests"),
]


def _cell(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def table(rows: dict[str, dict], extra: list[tuple[str, str]]) -> str:
    columns = [("scenario", "scenario"), *JOB_COLUMNS, *extra]
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for name, figures in rows.items():
        values = [name] + [_cell(figures.get(key)) for key, _ in columns[1:]]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(path: Path) -> None:
    data = json.loads(path.read_text())
    machine = next(iter(data.values()))["machine"]
    dates = sorted(entry["measured_at"] for entry in data.values())
    print(f"Profile {next(iter(data.values()))['profile']}; measured {dates[0]} to {dates[-1]}; ")
    print(f"machine: {json.dumps(machine)}\n")
    groups = {
        "Concurrency, race, deploy": (
            ["concurrency", "webhook_poll_race", "deploy_overlap"],
            [("seconds_to_all_final", "s to all final"), ("seconds", "s"), ("runs", "runs")],
        ),
        "Faults": (
            [k for k in data if k.startswith("faults.")],
            [("faults_hit", "faults hit"), ("rounds", "rounds"), ("seconds", "s")],
        ),
        "Crash recovery": (
            [k for k in data if k.startswith("crash_recovery.")],
            [("crashes", "crashes"), ("recovery_seconds_after_restart", "s to recover")],
        ),
    }
    for title, (names, extra) in groups.items():
        print(f"### {title}\n")
        print(table({n: data[n] for n in names if n in data}, extra))
        print()
    print("### Other scenarios\n")
    for name, figures in data.items():
        if any(name in names for names, _ in groups.values()):
            continue
        shown = {k: v for k, v in figures.items() if k not in ("machine", "profile")}
        print(f"- `{name}`: {json.dumps(shown, sort_keys=True)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".reliability" / "figures-full.json")
