"""Load on `cefrtune serve`: N concurrent clients on loopback, and what sharing decoding batches buys.

    python benchmarks/serve_load.py --tiny                         # a tiny random model (seconds a level)
    python benchmarks/serve_load.py --model runs/a1-.../merged     # a real run's model
    python benchmarks/serve_load.py --tiny --endpoint chat --clients 1,4,16 --requests 32

The server runs under uvicorn in this process (cefrtune.serve.start_in_thread) on 127.0.0.1;
each level of concurrency sends `--requests` requests from that many client threads (each
client sends its next request when the last one is answered), and stops sending after
`--time-limit` seconds. Endpoints: `sentences` (POST /v1/sentences, checked: a list of ten
words, then regeneration of the failing sentences) or `chat` (POST /v1/chat/completions,
greedy, `--max-tokens`). Printed per level: requests/s, p50/p95 latency, sentences/s (sentences
endpoint), 5xx answers and requests lost (sent but not answered); then the ratio of the highest
level's throughput to one client's: above 1 only because concurrent requests share decoding
batches (the scheduler's calls and most requests merged into one call are printed too).
It exits 1 on any 5xx or lost request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="merged or adapter folder")
    parser.add_argument("--tiny", action="store_true", help="serve a tiny random model (tests/tiny.py) instead")
    parser.add_argument("--endpoint", choices=("sentences", "chat"), default="sentences")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=16, help="requests per level")
    parser.add_argument(
        "--time-limit", type=float, default=300.0, help="seconds per level after which no request is sent"
    )
    parser.add_argument(
        "--attempts", type=int, default=None, help="checked regeneration rounds (default: the server's)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="tokens a list may have (default: the server's)"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="chat endpoint: tokens per answer")
    args = parser.parse_args()
    if bool(args.model) == args.tiny:
        parser.error("give --model DIR or --tiny")

    from cefrtune import serve
    from cefrtune.generation_settings import GENERATION

    model_dir = args.model or _tiny_model(Path(tempfile.mkdtemp(prefix="cefrtune-tiny-")))
    generator = serve.load(
        model_dir, attempts=args.attempts, max_new_tokens=args.max_new_tokens or GENERATION.max_new_tokens
    )
    feedback = Path(tempfile.mkdtemp(prefix="cefrtune-feedback-")) / "feedback.sqlite"
    app = serve.create_app(model_dir, generator=generator, feedback_db=feedback)
    server, url = serve.start_in_thread(app)
    body = (
        {"level": "A1", "words": WORDS}
        if args.endpoint == "sentences"
        else {
            "model": generator.name,
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Bir cümle yaz: ev"}],
        }
    )
    path = "/v1/sentences" if args.endpoint == "sentences" else "/v1/chat/completions"
    print(f"model {generator.name}, endpoint {path}, attempts {generator.attempts}, {args.requests} requests a level")
    _send(url, path, body, 1, 1, 60.0)  # warm-up: the first request pays one-off costs
    rows, failed = [], False
    for clients in [int(c) for c in args.clients.split(",")]:
        before = dict(generator.scheduler.stats)
        row = _send(url, path, body, clients, args.requests, args.time_limit)
        after = generator.scheduler.stats
        row["decode_calls"] = after["calls"] - before["calls"]
        row["jobs_per_call"] = round((after["jobs"] - before["jobs"]) / max(row["decode_calls"], 1), 2)
        rows.append(row)
        failed |= bool(row["5xx"] or row["lost"])
        print(
            f"{clients:>3} clients: {row['answered']:>3} answered in {row['seconds']:.1f} s, {row['rps']:.3f} req/s, "
            f"p50 {row['p50']:.2f} s, p95 {row['p95']:.2f} s"
            + (f", {row['sentences_per_s']:.2f} sentences/s" if args.endpoint == "sentences" else "")
            + f", 5xx {row['5xx']}, lost {row['lost']}, {row['decode_calls']} decode calls "
            f"({row['jobs_per_call']} jobs a call)",
            flush=True,
        )
    server.should_exit = True
    print(
        f"throughput {rows[-1]['clients']} clients / 1 client: {rows[-1]['rps'] / rows[0]['rps']:.2f}x; "
        f"most jobs in one decode call: {generator.scheduler.stats['most_jobs_in_a_call']}"
    )
    return 1 if failed else 0


def _send(url: str, path: str, body: dict, clients: int, requests: int, time_limit: float) -> dict:
    latencies, statuses, lock = [], [], threading.Lock()
    sent = [0]
    started = time.perf_counter()

    def client():
        with httpx.Client(base_url=url, timeout=time_limit + 600) as http:
            while True:
                with lock:
                    if sent[0] >= requests or time.perf_counter() - started > time_limit:
                        return
                    sent[0] += 1
                t0 = time.perf_counter()
                try:
                    status = http.post(path, json=body).status_code
                except httpx.HTTPError:
                    status = None  # lost
                with lock:
                    statuses.append(status)
                    if status == 200:
                        latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    answered = sum(s is not None for s in statuses)
    ok = len(latencies)
    latencies.sort()
    return {
        "clients": clients,
        "sent": sent[0],
        "answered": answered,
        "seconds": seconds,
        "rps": ok / seconds,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0,
        "sentences_per_s": 10 * ok / seconds,
        "5xx": sum(1 for s in statuses if s and s >= 500),
        "lost": sent[0] - answered,
    }


def _tiny_model(folder: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    import tiny

    tok = tiny.tokenizer()
    return tiny.save(tiny.llama(len(tok)), tok, folder)


if __name__ == "__main__":
    sys.exit(main())
