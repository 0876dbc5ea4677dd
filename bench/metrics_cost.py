"""What recording metrics costs per delivery, in CPU, beside the fan-out's CPU per message.

    python -m bench.metrics_cost [--quick] [--deliveries 200000] [--cpu-ms-per-message 0.85]

A delivered single-part digest records three things (bot/delivery.py): the send's round trip, the delivery's
outcome and the digest's lag. This times exactly those calls on a PrometheusMetrics, against NoMetrics, and
prints the difference per delivery and as a share of the fan-out's CPU per message (bench.fanout's cpu_s_per_1k,
engine-json: about 0.85 ms on the development machine). A CPU share is what can cost rate once the sender is
CPU-bound; the fan-out's own rate is too noisy on a shared machine to show a 1% difference.
"""

from __future__ import annotations

import argparse
import time

from prometheus_client.parser import text_string_to_metric_families

from bot.core.ports import NO_METRICS, Metrics
from bot.metrics import PrometheusMetrics

RUNS = 5  # the best of these is kept


def per_delivery_seconds(metrics: Metrics, deliveries: int) -> float:
    """CPU seconds per delivery of the calls the engine makes for one sent digest."""
    start = time.process_time()
    for _ in range(deliveries):
        metrics.send_round_trip("telegram", 0.042)
        metrics.delivery("telegram", "digest", "sent")
        metrics.digest_lag("telegram", 1.5)
    return (time.process_time() - start) / deliveries


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Time both, best of five, print the figures and return them (seconds per delivery)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries: a smoke run")
    parser.add_argument("--cpu-ms-per-message", type=float, default=0.85,
                        help="the fan-out's CPU per message (bench.fanout cpu_s_per_1k, engine-json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.deliveries = 1_000
    recording = PrometheusMetrics("bench:1")
    on = min(per_delivery_seconds(recording, args.deliveries) for _ in range(RUNS))
    off = min(per_delivery_seconds(NO_METRICS, args.deliveries) for _ in range(RUNS))
    extra_us = (on - off) * 1e6
    share = extra_us / (args.cpu_ms_per_message * 1000)
    print(f"metrics on:  {on * 1e6:.2f} us per delivery")
    print(f"metrics off: {off * 1e6:.2f} us per delivery")
    print(f"recording costs {extra_us:.2f} us per delivery: {share:.2%} of {args.cpu_ms_per_message} ms of CPU "
          "per message in the fan-out")
    sent = [sample.value for family in text_string_to_metric_families(recording.exposition().decode())
            for sample in family.samples if sample.name == "hkaipulse_deliveries_total"]
    assert sent == [RUNS * args.deliveries], f"the timed calls were not all recorded: {sent}"
    return {"on": on, "off": off}


if __name__ == "__main__":
    main()
