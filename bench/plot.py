#!/usr/bin/env python3
"""Draws the throughput chart of a benchmark run.

usage: plot.py THROUGHPUT_CSV OUTPUT_PNG MACHINE_LINE

The CSV is the one runnel-bench writes (subject,batch_size,median,min,max):
Runnel's end-to-end messages/s per batch size as a line with its min-max
range, the diagnostic Runnel run and Runnel exactly once as points of their
own, the baselines and Kafka Streams (at least once, exactly once) as
horizontal lines, and the targets: 0.9 x the baseline and 1.2 x Kafka
Streams at least once.
"""

import csv
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # no display here: render straight to a file
import matplotlib.pyplot as plt  # noqa: E402

TARGET_RATIO = 0.9
STREAMS_TARGET_RATIO = 1.2


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def thousands(row, field):
    return float(row[field]) / 1000.0


def draw_baseline(ax, row, label, style, color):
    median = thousands(row, "median")
    ax.axhline(median, linestyle=style, color=color, label=f"{label}: {median:.0f} k/s")
    ax.axhspan(thousands(row, "min"), thousands(row, "max"), color=color, alpha=0.08)
    return median


def draw_point(ax, row, offset, marker, color, label):
    """A subject measured at one batch size, drawn a little right of it
    (by `offset`) so that it does not hide Runnel's own point there."""
    size, median = int(row["batch_size"]) * offset, thousands(row, "median")
    ax.errorbar([size], [median],
                yerr=[[median - thousands(row, "min")], [thousands(row, "max") - median]],
                marker=marker, capsize=4, linestyle="none", color=color, label=label)
    ax.annotate(f"{median:.0f} k", (size, median), textcoords="offset points",
                xytext=(0, 8), ha="center", fontsize=8)


def main(csv_path, png_path, machine):
    rows = read_rows(csv_path)
    runnel = sorted(
        (row for row in rows if row["subject"] == "runnel"),
        key=lambda row: int(row["batch_size"]),
    )
    by_subject = {row["subject"]: row for row in rows if row["subject"] != "runnel"}

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if runnel:
        sizes = [int(row["batch_size"]) for row in runnel]
        medians = [thousands(row, "median") for row in runnel]
        below = [m - thousands(row, "min") for m, row in zip(medians, runnel)]
        above = [thousands(row, "max") - m for m, row in zip(medians, runnel)]
        ax.errorbar(sizes, medians, yerr=[below, above], marker="o", capsize=4,
                    color="tab:blue", label="Runnel, uppercase plugin (median, min-max)")
        for size, median in zip(sizes, medians):
            ax.annotate(f"{median:.0f} k", (size, median), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(size) for size in sizes])
        ax.minorticks_off()
    if "runnel_diagnostic" in by_subject:
        draw_point(ax, by_subject["runnel_diagnostic"], 1.15, "D", "tab:orange",
                   "Runnel, max_in_flight raised (diagnostic, not a default)")
    if "runnel_exactly_once" in by_subject:
        draw_point(ax, by_subject["runnel_exactly_once"], 0.87, "s", "tab:red",
                   "Runnel, exactly once")
    if "baseline" in by_subject:
        baseline = draw_baseline(ax, by_subject["baseline"],
                                 "baseline: rdkafka loop, offsets after delivery",
                                 "-", "tab:green")
        ax.axhline(baseline * TARGET_RATIO, linestyle=":", color="tab:red",
                   label=f"target: {TARGET_RATIO} x baseline")
    if "baseline_ungated" in by_subject:
        draw_baseline(ax, by_subject["baseline_ungated"],
                      "baseline, ungated (offsets on receipt)", "--", "tab:gray")
    if "kafka_streams" in by_subject:
        streams = draw_baseline(ax, by_subject["kafka_streams"],
                                "Kafka Streams, at least once", "-", "tab:purple")
        ax.axhline(streams * STREAMS_TARGET_RATIO, linestyle=":", color="tab:purple",
                   label=f"target: {STREAMS_TARGET_RATIO} x Kafka Streams at least once")
    if "kafka_streams_exactly_once" in by_subject:
        draw_baseline(ax, by_subject["kafka_streams_exactly_once"],
                      "Kafka Streams, exactly once", "--", "tab:brown")

    # Headroom above the highest line for the legend, so it hides no data;
    # the legend grows by a line per subject.
    top = max([thousands(row, "max") for row in rows] or [1.0])
    ax.set_ylim(0, top * (1.25 + 0.07 * len(ax.get_legend_handles_labels()[1])))
    ax.set_xlabel("batch size (messages per plugin call)")
    ax.set_ylabel("end-to-end throughput (thousand messages/s)")
    ax.set_title("Kafka in -> plugin -> Kafka out, 100 B values, one real broker")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    caption = "\n".join(textwrap.wrap(machine, width=120))
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(png_path)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
