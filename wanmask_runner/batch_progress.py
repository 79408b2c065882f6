"""What a batch shows while it runs and when it ends: one tqdm bar over the batch (done, failed, running,
queued, ETA) with a line per slot under it, log lines printed above the bar, and a summary table."""
from __future__ import annotations

import sys
import time
from datetime import datetime

from tqdm import tqdm


class BatchProgress:
    """The bar and the slot lines (drawn only on a terminal unless ``enabled`` is False, which hides them)."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.disable = None if enabled else True  # None: tqdm draws on a terminal only
        self.bar = tqdm(total=total, desc="batch", unit="job", file=self.stream, disable=self.disable,
                        dynamic_ncols=True, smoothing=0.05)
        self.lines: dict[str, tqdm] = {}
        self.lost: dict[str, str] = {}

    def slot(self, instance: str, lost: str | None = None) -> None:
        """A line for this slot (once); ``lost``: why it is gone."""
        if instance not in self.lines:
            self.lines[instance] = tqdm(total=0, position=len(self.lines) + 1, bar_format="{desc}",
                                        file=self.stream, disable=self.disable, leave=False)
        if lost:
            self.lost[instance] = lost

    def update(self, finished: int, counts: dict[str, int], running: dict[str, tuple[str, float]]) -> None:
        """``finished``: jobs of this run that ended; ``counts``: done/failed/running/queued;
        ``running``: instance -> (job id, monotonic start)."""
        self.bar.set_postfix_str(" ".join(f"{k} {v}" for k, v in counts.items()), refresh=False)
        self.bar.update(finished - self.bar.n)
        for instance, line in self.lines.items():
            if instance in self.lost:
                text = f"lost ({self.lost[instance]})"
            elif instance in running:
                text = f"{running[instance][0]} ({time.monotonic() - running[instance][1]:.0f} s)"
            else:
                text = "idle"
            line.set_description_str(f"  {instance}: {text}", refresh=False)
            line.refresh()
        self.bar.refresh()

    def close(self) -> None:
        for line in self.lines.values():
            line.close()
        self.bar.close()


def seconds(rec: dict) -> float | None:
    try:
        return (datetime.fromisoformat(rec["end"]) - datetime.fromisoformat(rec["start"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def summary(records: list[dict], ran: set[str], lost: dict[str, str], elapsed: float, not_run: list[str]) -> str:
    """The table printed when a batch ends: counts, one row per instance (jobs done and failed in this run,
    mean job time, lost or not), the failed jobs with their errors, and the jobs not run."""
    done = sum(r["status"] == "done" for r in records)
    failed = [r for r in records if r["status"] == "failed"]
    earlier = sum(r["status"] == "done" and r["id"] not in ran for r in records)
    lines = [f"batch: {len(records) + len(not_run)} job(s): {done} done ({earlier} from earlier runs), "
             f"{len(failed)} failed, {len(not_run)} not run; {elapsed:.1f} s"]
    rows = {}
    for r in records:
        if r["id"] in ran and r.get("instance"):
            row = rows.setdefault(r["instance"], {"done": 0, "failed": 0, "times": []})
            row[r["status"]] = row.get(r["status"], 0) + 1
            if seconds(r) is not None:
                row["times"].append(seconds(r))
    for instance in lost:
        rows.setdefault(instance, {"done": 0, "failed": 0, "times": []})
    if rows:
        width = max(len("instance"), *(len(i) for i in rows))
        lines.append(f"  {'instance':<{width}}  {'done':>5}  {'failed':>6}  {'mean s':>7}  state")
        for instance, row in rows.items():
            mean = f"{sum(row['times']) / len(row['times']):.2f}" if row["times"] else "-"
            state = f"lost: {lost[instance]}" if instance in lost else "ok"
            lines.append(f"  {instance:<{width}}  {row['done']:>5}  {row['failed']:>6}  {mean:>7}  {state}")
    if failed:
        lines.append("failed:")
        for r in failed:
            error = (r.get("error") or "").strip().splitlines() or ["(no error text)"]
            lines.append(f"  {r['id']}: {error[0]}" + "".join(f"\n    {e}" for e in error[1:6]))
    if not_run:
        lines.append(f"not run (interrupted): {', '.join(not_run[:20])}{' ...' if len(not_run) > 20 else ''}; "
                     "run the same command again to resume")
    return "\n".join(lines)
