"""Model gateway: its overhead, cache hits, micro-batching, and overhead against LiteLLM.

    python -m bench.gateway [--data DIR] [--calls 400] [--seconds 3] [--llm-calls 40] [--json]

DIR holds a ``test.csv`` (``text,category``) whose texts are the inputs (default:
``$SLUICE_DATA_DIR/banking77`` when it exists, else the support-triage sample that ships
with Sluice). In one process, against baselines run in the same process and interleaved
with the subject in alternating rounds (the machine is small and noisy, so only ratios
within one run mean much):

1. **overhead**: one-text ``embed`` calls through the gateway (cache and micro-batching
   off) against ``Encoder.encode([text])`` on the same encoder object; the same for
   ``classify`` against encoder + classifier head called directly;
2. **cache hits**: latency of an exact-cache hit from the in-process LRU and from the
   store (the LRU cleared first) against a miss;
3. **micro-batching**: texts/s of 8 threads each sending one-text ``embed`` calls, with
   micro-batching on and off (same encoder processes), and the mean batch it formed;
4. **LLM overhead**: short chat completions from a local llama.cpp server (the packaged
   SmolLM2-135M) through the gateway's ``openai`` endpoint, through LiteLLM's ``Router``
   (``sluice[bench]``) and as a plain ``httpx`` POST (the baseline); skipped, with the
   reason, where ``sluice[llm]`` or LiteLLM is missing.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import Timer, emit, machine, parser, write_section

#: The served model's name on the benchmark's llama.cpp server.
SERVED = "smollm2"
#: Texts in the one encoder call that bounds what batching can reach (part 3).
CEILING_TEXTS = 256

#: A chat client: prompt -> (completion tokens, whether log-probabilities came back).
ChatClient = Callable[[str], tuple[int, bool]]


def _args() -> Any:
    p = parser(__doc__.split("\n\n")[0], "banking77")
    p.add_argument(
        "--calls", type=int, default=400, help="timed one-text calls per subject (part 1)"
    )
    p.add_argument("--cache-calls", type=int, default=200, help="texts for the cache timings")
    p.add_argument("--rounds", type=int, default=10, help="alternating rounds (part 1)")
    p.add_argument("--threads", type=int, default=8, help="concurrent callers (part 3)")
    p.add_argument(
        "--seconds", type=float, default=1.5, help="seconds per micro-batching round (part 3)"
    )
    p.add_argument(
        "--batch-rounds", type=int, default=6, help="micro-batching rounds per mode (part 3)"
    )
    p.add_argument("--llm-calls", type=int, default=60, help="timed chat calls per client")
    p.add_argument("--max-tokens", type=int, default=4, help="tokens per chat completion")
    p.add_argument("--no-llm", action="store_true", help="skip part 4")
    return p.parse_args()


def _data_folder(arg: Path | None) -> Path:
    from sluice.config import Settings
    from sluice.pipelines.support_triage import sample_path

    if arg is not None:
        if not (arg / "test.csv").is_file():
            sys.exit(f"error: no test.csv in {arg}")
        return arg
    banking = Settings().data_dir / "banking77"
    return banking if (banking / "test.csv").is_file() else sample_path("test.csv").parent


def _distinct(texts: Sequence[str]) -> list[str]:
    from sluice.models.response_cache import normalize_text

    return list({normalize_text(t): t for t in texts if t.strip()}.values())


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _interleaved(
    subjects: dict[str, Callable[[str], Any]], texts: Sequence[str], calls: int, rounds: int
) -> dict[str, list[float]]:
    """Per-call seconds of each subject: same texts, rounds in alternating order."""
    names = list(subjects)
    times: dict[str, list[float]] = {n: [] for n in names}
    per_round = max(1, calls // rounds)
    clock = time.perf_counter
    for r in range(rounds):
        chunk = [texts[(r * per_round + i) % len(texts)] for i in range(per_round)]
        for name in names if r % 2 == 0 else names[::-1]:
            fn, out = subjects[name], times[name]
            for text in chunk:
                t0 = clock()
                fn(text)
                out.append(clock() - t0)
    return times


def _overhead(
    times: dict[str, list[float]], subject: str, baseline: str, rounds: int
) -> dict[str, Any]:
    s, b = statistics.median(times[subject]), statistics.median(times[baseline])
    n = len(times[subject]) // rounds
    per_round = [
        statistics.median(times[subject][i : i + n]) / statistics.median(times[baseline][i : i + n])
        for i in range(0, n * rounds, n)
    ]
    return {
        f"{baseline}_ms_p50": _ms(b),
        f"{subject}_ms_p50": _ms(s),
        "overhead_us_p50": round((s - b) * 1e6, 1),
        "ratio": round(s / b, 4),
        # Each round's ratio, then the median: robust to the machine's load drifting.
        "ratio_rounds_median": round(statistics.median(per_round), 4),
        "calls_each": len(times[subject]),
    }


# -- part 1: the gateway against the encoder (and head) called directly ---------------------
def _direct_overhead(
    gateway: Any, encoder: Any, head: Any, texts: list[str], args: Any
) -> dict[str, Any]:
    for text in texts[:20]:  # warm up both paths (the provider is made on first use)
        gateway.embed("embed", [text])
        gateway.classify("support-intent", [text])
        head.predict(encoder.encode([text]), top=3)
    embed = _interleaved(
        {
            "encoder": lambda t: encoder.encode([t]),
            "gateway": lambda t: gateway.embed("embed", [t]),
        },
        texts,
        args.calls,
        args.rounds,
    )
    classify = _interleaved(
        {
            "direct": lambda t: head.predict(encoder.encode([t]), top=3),
            "gateway": lambda t: gateway.classify("support-intent", [t]),
        },
        texts,
        args.calls,
        args.rounds,
    )
    return {
        "embed": _overhead(embed, "gateway", "encoder", args.rounds),
        "classify": _overhead(classify, "gateway", "direct", args.rounds),
    }


# -- part 2: exact-cache hits ---------------------------------------------------------------
def _cache_hits(gateway: Any, texts: list[str], n: int) -> dict[str, Any]:
    """Per text: a miss, a hit from the in-process LRU, then (LRU cleared) one from the store."""
    seconds: dict[str, list[float]] = {"miss": [], "memory": [], "store": []}
    clock = time.perf_counter
    wrong = 0
    for text in texts[:n]:
        for kind in ("miss", "memory", "store"):
            if kind == "store":
                gateway.cache.clear_memory()
            t0 = clock()
            got = gateway.embed("embed", [text])
            seconds[kind].append(clock() - t0)
            wrong += got.records[0].cache != ("miss" if kind == "miss" else "exact")
    out: dict[str, Any] = {"texts": len(seconds["miss"]), "unexpected_outcomes": wrong}
    for kind, values in seconds.items():
        out[kind] = {"p50_ms": _ms(_pct(values, 50)), "p95_ms": _ms(_pct(values, 95))}
    miss = statistics.median(seconds["miss"])
    out["memory_hit_over_miss"] = round(statistics.median(seconds["memory"]) / miss, 4)
    out["store_hit_over_miss"] = round(statistics.median(seconds["store"]) / miss, 4)
    return out


# -- part 3: micro-batching under concurrent callers ----------------------------------------
def _concurrent_calls(gateway: Any, texts: list[str], threads: int, seconds: float) -> float:
    """Texts/s of ``threads`` callers each sending one-text embed calls for ``seconds``."""
    stop = threading.Event()
    start = threading.Barrier(threads + 1)
    counts = [0] * threads
    failures: list[BaseException] = []

    def caller(j: int) -> None:
        start.wait()
        n, i = 0, j
        try:
            while not stop.is_set():
                gateway.embed("embed", [texts[i % len(texts)]])
                n += 1
                i += threads
        except BaseException as exc:
            failures.append(exc)
        counts[j] = n

    pool = [threading.Thread(target=caller, args=(j,), daemon=True) for j in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise failures[0]
    return sum(counts) / elapsed


def _micro_batching(off: Any, on: Any, encoder: Any, texts: list[str], args: Any) -> dict[str, Any]:
    batcher = on._encoder("minilm").batcher
    assert batcher is not None, "micro-batching did not turn on"
    for gw in (off, on):  # warm up
        _concurrent_calls(gw, texts, args.threads, min(0.5, args.seconds))
    before = (batcher.stats.dispatches, batcher.stats.texts)
    rates: dict[str, list[float]] = {"off": [], "on": [], "one_call": []}
    for r in range(args.batch_rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            gw = off if mode == "off" else on
            rates[mode].append(_concurrent_calls(gw, texts, args.threads, args.seconds))
        # The ceiling: the same encoder given many texts in one call.
        chunk = [texts[(r * CEILING_TEXTS + i) % len(texts)] for i in range(CEILING_TEXTS)]
        with Timer() as t:
            encoder.encode(chunk)
        rates["one_call"].append(CEILING_TEXTS / t.seconds)
    dispatches = batcher.stats.dispatches - before[0]
    batched = batcher.stats.texts - before[1]
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    return {
        "threads": args.threads,
        "seconds_per_round": args.seconds,
        "rounds_per_mode": args.batch_rounds,
        "off_texts_per_s": round(off_rate, 1),
        "on_texts_per_s": round(on_rate, 1),
        "ratio": round(on_rate / off_rate, 4),
        # Each round's on/off, then the median: robust to the machine's load drifting.
        "ratio_paired_median": round(
            statistics.median(a / b for a, b in zip(rates["on"], rates["off"], strict=True)), 4
        ),
        "encoder_one_call_texts_per_s": round(statistics.median(rates["one_call"]), 1),
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "mean_batch": round(batched / dispatches, 2) if dispatches else None,
        "max_batch": batcher.max_batch,
        "max_in_flight": batcher.max_in_flight,
    }


# -- part 4: chat through the gateway, LiteLLM and plain httpx --------------------------------
class _LoopbackOnly:
    """Refuses (and counts) connections to anything but loopback while installed.

    LiteLLM may reach for the network (its model-cost map, telemetry); this makes sure
    the benchmark talks to the local server only, and reports any attempt.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._original = socket.socket.connect

    def __enter__(self) -> _LoopbackOnly:
        guard, original = self, self._original

        def connect(sock: socket.socket, address: Any) -> Any:
            host = address[0] if isinstance(address, tuple) else str(address)
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not (
                host.startswith("127.") or host in ("::1", "localhost")
            ):
                guard.refused.append(str(host))
                raise OSError(f"bench.gateway: network access to {host} refused")
            return original(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect = self._original  # type: ignore[method-assign]


def _llm_missing() -> str | None:
    from sluice.errors import MissingDependencyError
    from sluice.models.providers import packaged_gguf

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama_cpp is not installed (pip install '.[llm]')"
    try:
        packaged_gguf()
    except MissingDependencyError as exc:
        return f"{exc} ({exc.hint})" if getattr(exc, "hint", None) else str(exc)
    return None


class _ServerStartError(RuntimeError):
    """The llama.cpp server exited or did not answer in time (part 4 is skipped)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` on the packaged GGUF; yields its ``/v1`` URL."""
    import httpx

    from sluice.models.providers import packaged_gguf

    port = _free_port()
    command = [
        sys.executable,
        *("-m", "llama_cpp.server", "--model", str(packaged_gguf())),
        *("--model_alias", SERVED, "--host", "127.0.0.1", "--port", str(port)),
        *("--n_ctx", "2048", "--verbose", "False"),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:  # a pipe nobody reads would block the server
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            with httpx.Client(timeout=2.0) as client:
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise _ServerStartError(f"llama.cpp server did not start: {tail}")
                    try:
                        if client.get(f"{base_url}/models").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _llm_clients(
    base_url: str, settings: Any, store: Any, max_tokens: int
) -> tuple[dict[str, ChatClient], list[Callable[[], None]], dict[str, Any]]:
    """The chat clients to compare, their closers, and notes.

    Each client maps a prompt to (completion tokens, whether log-probabilities came back).
    """
    import httpx

    from sluice.models import ChatMessage, ChatParams, Gateway, load_gateway_config

    notes: dict[str, Any] = {}
    params = ChatParams(max_tokens=max_tokens, temperature=0.0)
    # The body the gateway's provider sends (openai_http.py), so every client asks the
    # server for the same work: log-probabilities included.
    wire = {
        "model": SERVED,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "seed": params.seed,
        "logprobs": True,
        "top_logprobs": 0,
    }
    client = httpx.Client(timeout=60.0)

    def direct(prompt: str) -> int:
        body = {**wire, "messages": [{"role": "user", "content": prompt}]}
        response = client.post(f"{base_url}/chat/completions", json=body)
        response.raise_for_status()
        data = response.json()
        choice = data["choices"][0]
        _ = choice["message"]["content"]
        return int(data["usage"]["completion_tokens"]), choice.get("logprobs") is not None

    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {
                "llm": {
                    "provider": "openai",
                    "base_url": base_url,
                    "model": SERVED,
                    "version": "bench",
                    "timeout_s": 60.0,
                }
            },
            "routes": {"bench-chat": {"kind": "chat", "tiers": ["llm"], "cache": {"exact": False}}},
        },
    )
    gateway = Gateway(settings, store, config=config)

    def sluice(prompt: str) -> int:
        got = gateway.chat("bench-chat", [ChatMessage("user", prompt)], params=params)
        return got.reply.usage.output_tokens, got.reply.confidence is not None

    clients: dict[str, ChatClient] = {"direct": direct, "sluice": sluice}
    closers: list[Callable[[], None]] = [client.close, gateway.close]
    if importlib.util.find_spec("litellm") is None:
        notes["litellm_skipped"] = "litellm is not installed (pip install '.[bench]')"
        return clients, closers, notes
    # Before the import: LiteLLM would otherwise fetch its model-cost map from the web.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    with Timer() as t_import:
        import litellm
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    notes["litellm_version"] = _version("litellm")
    notes["litellm_import_s"] = round(t_import.seconds, 2)
    router = litellm.Router(
        model_list=[
            {
                "model_name": "bench-llm",
                "litellm_params": {
                    "model": f"openai/{SERVED}",
                    "api_base": base_url,
                    "api_key": "none",
                },
            }
        ]
    )

    def via_litellm(prompt: str) -> int:
        response = router.completion(
            model="bench-llm",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
            seed=params.seed,
            logprobs=True,
            top_logprobs=0,
        )
        choice = response.choices[0]
        _ = choice.message.content
        return int(response.usage.completion_tokens), choice.logprobs is not None

    clients["litellm"] = via_litellm
    return clients, closers, notes


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _llm_overhead(settings: Any, store: Any, texts: list[str], args: Any) -> dict[str, Any]:
    if args.no_llm:
        return {"skipped": "--no-llm"}
    missing = _llm_missing()
    if missing:
        return {"skipped": missing}
    try:
        with _LoopbackOnly() as guard, _llama_server() as base_url:
            clients, closers, notes = _llm_clients(base_url, settings, store, args.max_tokens)
            try:
                result = _chat_rounds(clients, texts, args)
            finally:
                for close in closers:
                    close()
    except _ServerStartError as exc:
        return {"skipped": str(exc)}
    result.update(notes)
    result["non_loopback_connections_refused"] = guard.refused
    if "litellm" in sys.modules:
        # LiteLLM points tiktoken at the encodings it bundles (when it loads them at all).
        result["tiktoken_loaded"] = "tiktoken" in sys.modules
        registry = sys.modules.get("tiktoken.registry")
        result["tiktoken_encodings_loaded"] = sorted(getattr(registry, "ENCODINGS", {}))
        result["tiktoken_cache_dir"] = os.environ.get("TIKTOKEN_CACHE_DIR")
    return result


def _chat_rounds(clients: dict[str, ChatClient], texts: list[str], args: Any) -> dict[str, Any]:
    """Each round: one prompt, a warm-up call, then every client once, in rotating order.

    The warm-up puts the prompt in the server's KV cache, so no client pays for its
    evaluation and all of them get the same work done by the server.
    """
    names = list(clients)
    prompts = [f"Answer in one word. Customer message: {t}" for t in texts]
    for prompt in prompts[:3]:  # first calls import and connect
        for fn in clients.values():
            fn(prompt)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    tokens: dict[str, list[int]] = {n: [] for n in names}
    logprobs: dict[str, bool] = dict.fromkeys(names, True)
    clock = time.perf_counter
    for r in range(args.llm_calls):
        prompt = prompts[(r + 3) % len(prompts)]
        clients["direct"](prompt)
        k = r % len(names)
        order = names[k:] + names[:k]
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = clock()
            count, has_logprobs = clients[name](prompt)
            seconds[name].append(clock() - t0)
            tokens[name].append(count)
            logprobs[name] &= has_logprobs
    med = {n: statistics.median(v) for n, v in seconds.items()}
    out: dict[str, Any] = {
        "calls_each": args.llm_calls,
        "max_tokens": args.max_tokens,
        "served_model": SERVED,
        "completion_tokens_mean": round(statistics.mean(tokens["direct"]), 2),
        # Same tokens generated by every client for every prompt: same work.
        "same_completion_tokens": all(
            len({tokens[n][i] for n in names}) == 1 for i in range(args.llm_calls)
        ),
        # Log-probabilities asked for and returned to every client: same request.
        "logprobs_returned": logprobs,
    }
    for name in names:
        out[f"{name}_ms_p50"] = _ms(med[name])
        out[f"{name}_ms_p95"] = _ms(_pct(seconds[name], 95))
        if name != "direct":
            paired = [s - d for s, d in zip(seconds[name], seconds["direct"], strict=True)]
            out[f"{name}_overhead_ms_p50"] = _ms(statistics.median(paired))
    out["sluice_over_direct"] = round(med["sluice"] / med["direct"], 4)
    if "litellm" in med:
        out["litellm_over_direct"] = round(med["litellm"] / med["direct"], 4)
        out["sluice_over_litellm"] = round(med["sluice"] / med["litellm"], 4)
    return out


# -- the run ---------------------------------------------------------------------------------
def _gateway(settings: Any, store: Any, registry: Any, *, cache: bool, batch: bool) -> Any:
    from sluice.models import Gateway, load_gateway_config

    micro = {"max_batch": 32} if batch else None
    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {"minilm": {"provider": "local-encoder", "micro_batch": micro}},
            "routes": {
                "embed": {"kind": "embed", "tiers": ["minilm"], "cache": {"exact": cache}},
                "support-intent": {
                    "kind": "classify",
                    "tiers": ["support-intent"],
                    "cache": {"exact": cache},
                },
            },
        },
    )
    return Gateway(settings, store, config=config, registry=registry)


def main() -> None:
    args = _args()
    folder = _data_folder(args.data)
    from sluice.config import Settings
    from sluice.models import load_classifier, load_encoder, read_labelled_csv, train_classifier
    from sluice.pipelines.support_triage import MODEL_NAME, sample_path
    from sluice.runtime import Runtime

    texts = _distinct(read_labelled_csv(folder / "test.csv").texts)
    result: dict[str, Any] = {
        "benchmark": "gateway",
        "data": str(folder),
        "texts": len(texts),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        settings = Settings(home=Path(tmp), model_cache=Settings().models_dir, executor_id="bench")
        with Timer() as t_load:
            encoder = load_encoder(settings)
        result["encoder"] = {
            "name": encoder.name,
            "version": encoder.version,
            "processes": encoder.processes,
            "load_seconds": round(t_load.seconds, 2),
        }
        with Runtime(settings) as rt:
            # The classifier's quality does not matter here: the shipped sample is quick.
            train_classifier(
                settings, rt.models, MODEL_NAME, read_labelled_csv(sample_path("train.csv"))
            )
            _, head, _ = load_classifier(rt.models, MODEL_NAME)
            plain = _gateway(settings, rt.store, rt.models, cache=False, batch=False)
            cached = _gateway(settings, rt.store, rt.models, cache=True, batch=False)
            batched = _gateway(settings, rt.store, rt.models, cache=False, batch=True)
            try:
                result["overhead"] = _direct_overhead(plain, encoder, head, texts, args)
                result["cache"] = _cache_hits(cached, texts, args.cache_calls)
                result["micro_batching"] = _micro_batching(plain, batched, encoder, texts, args)
            finally:
                for gw in (plain, cached, batched):
                    gw.close()
            result["llm"] = _llm_overhead(settings, rt.store, texts, args)
    # Other work on the machine during the run shows here (the start is in machine()).
    result["machine"]["load_1min_at_end"] = (
        round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    )
    _report(result, args)


def _report(result: dict[str, Any], args: Any) -> None:
    e, c = result["overhead"]["embed"], result["overhead"]["classify"]
    cache, mb, llm = result["cache"], result["micro_batching"], result["llm"]
    rows = [
        (
            "embed, one text: gateway / encoder direct (target < 1.05)",
            f"{e['ratio']:.3f} ({e['gateway_ms_p50']:.2f} vs {e['encoder_ms_p50']:.2f} ms p50, "
            f"+{e['overhead_us_p50']:.0f} µs)",
        ),
        (
            "classify, one text: gateway / encoder + head direct",
            f"{c['ratio']:.3f} ({c['gateway_ms_p50']:.2f} vs {c['direct_ms_p50']:.2f} ms p50, "
            f"+{c['overhead_us_p50']:.0f} µs)",
        ),
        (
            "embed cache miss p50 / p95",
            f"{cache['miss']['p50_ms']:.2f} / {cache['miss']['p95_ms']:.2f} ms",
        ),
        (
            "embed cache hit, in-process LRU, p50 / p95",
            f"{cache['memory']['p50_ms']:.3f} / {cache['memory']['p95_ms']:.3f} ms "
            f"({cache['memory_hit_over_miss']:.3f} of a miss)",
        ),
        (
            "embed cache hit, from the store (SQLite), p50 / p95",
            f"{cache['store']['p50_ms']:.2f} / {cache['store']['p95_ms']:.2f} ms "
            f"({cache['store_hit_over_miss']:.3f} of a miss)",
        ),
        (
            f"{mb['threads']} callers, one-text embeds: micro-batching off",
            f"{mb['off_texts_per_s']:.0f} texts/s",
        ),
        (
            f"{mb['threads']} callers, one-text embeds: micro-batching on "
            f"(max {mb['max_batch']}, {mb['max_in_flight']} in flight)",
            f"{mb['on_texts_per_s']:.0f} texts/s, ratio {mb['ratio']:.2f}, "
            f"mean batch {mb['mean_batch']}",
        ),
        (
            f"ceiling: the encoder given {CEILING_TEXTS} texts in one call",
            f"{mb['encoder_one_call_texts_per_s']:.0f} texts/s",
        ),
    ]
    if "skipped" in llm:
        rows.append(("LLM overhead (gateway, LiteLLM, httpx)", f"skipped: {llm['skipped']}"))
    else:
        rows.append(
            (
                f"chat, {llm['max_tokens']} tokens, plain httpx POST (baseline) p50",
                f"{llm['direct_ms_p50']:.1f} ms",
            )
        )
        rows.append(
            (
                "chat through the Sluice gateway p50",
                f"{llm['sluice_ms_p50']:.1f} ms (+{llm['sluice_overhead_ms_p50']:.2f} ms, "
                f"ratio {llm['sluice_over_direct']:.3f})",
            )
        )
        if "litellm_ms_p50" in llm:
            rows.append(
                (
                    f"chat through LiteLLM {llm.get('litellm_version')} Router p50",
                    f"{llm['litellm_ms_p50']:.1f} ms (+{llm['litellm_overhead_ms_p50']:.2f} ms, "
                    f"ratio {llm['litellm_over_direct']:.3f})",
                )
            )
            rows.append(("chat: Sluice / LiteLLM", f"{llm['sluice_over_litellm']:.3f}"))
        else:
            rows.append(("chat through LiteLLM", f"skipped: {llm['litellm_skipped']}"))
    emit(result, args.json, rows)
    if args.no_docs:
        return
    write_section(
        "gateway",
        "Model gateway",
        rows,
        notes=(
            f"Inputs: {result['texts']} distinct texts from `{Path(result['data']).name}/"
            f"test.csv`; the int8 MiniLM encoder in {result['encoder']['processes']} "
            f"processes; load average {result['machine']['load_1min_at_end']} at the end. "
            "Every figure is a ratio against a baseline measured in the same run, "
            "interleaved with it in alternating rounds, medians reported. Overhead: the "
            "gateway with caching and micro-batching off (it still routes, runs the circuit "
            "breaker and limits, applies the call timeout and meters every call) against "
            "`Encoder.encode([text])` on the same encoder object, and against that plus "
            "the classifier head's `predict`. Cache: per text a miss, a hit from the "
            "in-process LRU, then a hit from the store after `cache.clear_memory()`. "
            "Micro-batching: threads each send one-text `embed` calls for "
            f"{result['micro_batching']['seconds_per_round']:g} s per round, "
            f"{result['micro_batching']['rounds_per_mode']} rounds per mode. Chat: a local "
            "llama.cpp server (`python -m llama_cpp.server`, the packaged "
            "SmolLM2-135M-Instruct Q4_1) answers short greedy completions; per round one "
            "prompt is sent once untimed (so it sits in the server's KV cache for every "
            "client), then once per client in rotating order; all clients send the same "
            "request (including `logprobs`, which the gateway's provider asks for) and the "
            "gateway's cache is off. LiteLLM runs with `LITELLM_LOCAL_MODEL_COST_MAP=True` "
            "and every non-loopback connection refused."
        ),
        result=result,
    )


if __name__ == "__main__":
    main()
