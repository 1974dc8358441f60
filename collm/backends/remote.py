"""A backend that samples from OpenAI-compatible servers (vLLM, SGLang,
llama.cpp server, Ollama) through the official async `openai` client.

    backend = RemoteBackend(["http://127.0.0.1:8001/v1"], params=494_032_768)
    backend.generate([Prompt("What is 2+3?")], n=8, SamplingParams(max_tokens=256))

Strategies run on it unchanged: generate() and score_prompt() are the Backend
interface, synchronous, and safe to call from many threads at once; the
HTTP work runs on one event loop in a background thread (agenerate awaits
the same work from any event loop).

Generation uses /v1/chat/completions, so the upstream applies the model's
own chat template, with `n`, `seed` and `logprobs`:

- n: vLLM and SGLang return n choices from one request (one prefill). The
  llama.cpp server and Ollama ignore n > 1 and return one choice: the first
  time an upstream returns fewer choices than asked, it is remembered as
  single-sample and the missing samples are fanned out as concurrent
  requests with n = 1 (seed + i each, when a seed is given). Their prompts
  are still counted once: these servers cache the shared prefix.
- logprobs: per-token log-probs give each completion's token count and
  summed log-prob. An upstream that refuses logprobs is retried once without
  and remembered; then a completion's tokens come from the usage (split by
  text length when several choices share one usage).
- assistant_prefix (a partial answer to continue) is sent as a final
  assistant message with vLLM's `continue_final_message`.

Prompt scoring (difficulty) uses /v1/completions with echo=True, logprobs=5
and max_tokens=1 on the prompt rendered with `chat_template` (the plain
"role: text" form when none is given): the upstream returns each prompt
token's log-prob and top-5 alternatives (vLLM computes them with its
prompt_logprobs machinery; the llama.cpp server needs logits_all, its
default). The entropy at each position is computed from the top-5
distribution with the remaining mass as one extra outcome, a lower bound of
the true entropy. An upstream without prompt log-probs raises CollmError,
and the server then budgets without a difficulty.

Several upstream URLs are load-balanced: each prompt goes to the upstream
with the fewest requests in flight (round-robin among equals), all its
samples to the same one so its prefix cache serves them; an upstream that
cannot be reached is skipped for the next one, and tried last for the
next 10 s. Scaling out is the
upstreams' job (vLLM data parallelism, more servers), not collm's.

`params` (the upstream model's parameter count) is needed for FLOP
accounting: 2 x params x tokens. max_in_flight caps the HTTP requests
under way at once (a bank build's --concurrency). check() asks every
upstream for its models before any work: unreachable, not serving the model
asked for, or answering garbage is a CollmError there. The backend's
identity() is the upstream's model id and the parameter count given, what
bank headers and policy files record. Failures raise UpstreamError (HTTP
502 in the server) or UpstreamTimeout (504); a response that is not what
the OpenAI API returns is an UpstreamError too, never a traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Sequence

from collm.backends import seeding
from collm.backends.base import Backend
from collm.errors import CollmError
from collm.flops import usage_for
from collm.prompts import ChatTemplate, Prompt
from collm.types import Completion, Generation, PromptScore, SamplingParams

TOP_LOGPROBS = 5
DOWN_FOR_S = 10.0  # an upstream that could not be reached is tried last for this long


class UpstreamError(CollmError):
    """The upstream server failed or could not be reached."""

    http_status = 502


class UpstreamTimeout(UpstreamError):
    """The upstream server did not answer in time."""

    http_status = 504


def topk_entropy(top: dict[str, float] | None) -> float | None:
    """Entropy (nats) of a top-k distribution, the leftover mass as one outcome (a lower bound)."""
    if not top:
        return None
    ps = [math.exp(lp) for lp in top.values()]
    h = -sum(p * math.log(p) for p in ps if p > 0)
    rest = 1.0 - sum(ps)
    if rest > 1e-12:
        h -= rest * math.log(rest)
    return h


class RemoteBackend(Backend):
    name = "remote"
    thread_safe = True  # the server may call it from many threads at once
    supports_cancel = True  # generate/score_prompt take cancel=threading.Event

    def __init__(self, urls: str | Sequence[str], model: str | None = None, params: int = 0,
                 api_key: str | None = None, timeout: float = 120.0, context_length: int = 4096,
                 chat_template: str | None = None, logprobs: bool = True, max_in_flight: int | None = None):
        from openai import AsyncOpenAI

        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise CollmError("give at least one upstream URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.params = int(params)
        self.context_length = int(context_length)
        self.model = model
        self.model_id = f"remote:{model or '?'}@{','.join(self.urls)}"
        self.timeout = float(timeout)
        self.template = ChatTemplate(chat_template)
        self._clients = [AsyncOpenAI(base_url=u, api_key=api_key or "none", timeout=timeout, max_retries=0)
                         for u in self.urls]
        self._multi_n: list[bool | None] = [None] * len(self.urls)  # None: not known yet
        self._logprobs = [bool(logprobs)] * len(self.urls)
        self._top_k = [True] * len(self.urls)  # False once an upstream refuses the top_k field
        self._busy = [0] * len(self.urls)
        self._down_until = [0.0] * len(self.urls)
        self._rr = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if max_in_flight is not None and max_in_flight < 1:
            raise CollmError(f"requests in flight must be at least 1 (got {max_in_flight})")
        self.max_in_flight = max_in_flight
        self._slots: asyncio.Semaphore | None = None  # made on the loop, on first use

    # ---- the background event loop ----
    def _run(self, coro, cancel: threading.Event | None = None):
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="collm-remote", daemon=True)
                self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        while True:  # bounded by the client timeout inside the coroutine
            try:
                return fut.result(timeout=0.1)
            except TimeoutError:
                if cancel is not None and cancel.is_set():
                    fut.cancel()  # cancels the HTTP requests: the upstream drops them
                    raise CollmError("cancelled") from None

    def close(self) -> None:
        if self._loop is None:
            return

        async def shut():
            for c in self._clients:
                await c.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop = None

    def _slot(self):
        """A context that holds one of max_in_flight request slots (none when unlimited)."""
        import contextlib

        if self.max_in_flight is None:
            return contextlib.nullcontext()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        return self._slots

    # ---- upstream choice and errors ----
    def _order(self) -> list[int]:
        """Upstreams to try: reachable ones first, fewest in flight, round-robin among equals;
        one that could not be reached lately is tried last."""
        now = time.monotonic()
        live = [i for i in range(len(self.urls)) if self._down_until[i] <= now]
        down = [i for i in range(len(self.urls)) if self._down_until[i] > now]
        start = next(self._rr)
        pos = {i: (j - start) % max(1, len(live)) for j, i in enumerate(live)}
        return sorted(live, key=lambda i: (self._busy[i], pos[i])) + down

    async def _call(self, fn, *args, **kwargs):
        """Run fn(client_index, ...) on the best upstream, failing over when one cannot be reached."""
        import openai

        last = None
        for i in self._order():
            self._busy[i] += 1
            try:
                return await fn(i, *args, **kwargs)
            except openai.APITimeoutError:
                raise UpstreamTimeout(f"upstream {self.urls[i]} timed out after {self.timeout:g} s") from None
            except openai.APIConnectionError as e:
                self._down_until[i] = time.monotonic() + DOWN_FOR_S
                last = UpstreamError(f"cannot reach upstream {self.urls[i]}: {e}")
            except openai.APIStatusError as e:
                msg = _message(e)
                if e.status_code in (400, 404, 413, 422):
                    raise CollmError(f"upstream {self.urls[i]} refused the request: {msg}") from None
                raise UpstreamError(f"upstream {self.urls[i]} failed with HTTP {e.status_code}: {msg}") from None
            except (openai.APIError, AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
                # 200 with a body that is not the OpenAI API's (an HTML page, JSON without choices, ...)
                raise UpstreamError(f"upstream {self.urls[i]} returned a response that is not the OpenAI API's "
                                    f"({type(e).__name__}: {str(e)[:200]})") from None
            finally:
                self._busy[i] -= 1
        raise last

    async def _model_name(self, i: int) -> str:
        if self.model is None:
            served = await self._served(i)
            if not served:
                raise UpstreamError(f"upstream {self.urls[i]} serves no model")
            self.model = served[0]
            self.model_id = f"remote:{self.model}@{','.join(self.urls)}"
        return self.model

    async def _served(self, i: int) -> list[str]:
        """The model ids upstream i lists at /v1/models."""
        page = await self._clients[i].models.list()
        data = getattr(page, "data", None)
        if not isinstance(data, list) or not all(isinstance(getattr(m, "id", None), str) for m in data):
            raise UpstreamError(f"upstream {self.urls[i]} answered /models with something that is not a model list")
        return [m.id for m in data]

    def check(self) -> None:
        """Ask every upstream for its models: each must be reachable and serve
        the model asked for (without one: the first upstream's first model,
        which every other upstream must serve too). A CollmError otherwise."""

        import openai

        async def one(i):
            try:
                return await self._served(i)
            except openai.APITimeoutError:
                raise UpstreamTimeout(f"upstream {self.urls[i]} did not answer /models in {self.timeout:g} s") from None
            except openai.APIConnectionError as e:
                raise UpstreamError(f"cannot reach upstream {self.urls[i]}: {e}") from None
            except openai.APIStatusError as e:
                raise UpstreamError(f"upstream {self.urls[i]} answered /models with HTTP {e.status_code}: "
                                    f"{_message(e)}") from None
            except (openai.APIError, AttributeError, TypeError, ValueError) as e:
                raise UpstreamError(f"upstream {self.urls[i]} answered /models with something that is not the "
                                    f"OpenAI API's ({str(e)[:200]})") from None

        async def work():
            return await asyncio.gather(*(one(i) for i in range(len(self.urls))))

        lists = self._run(work())
        if self.model is None:
            if not lists[0]:
                raise UpstreamError(f"upstream {self.urls[0]} serves no model")
            self.model = lists[0][0]
            self.model_id = f"remote:{self.model}@{','.join(self.urls)}"
        for url, served in zip(self.urls, lists):
            if self.model not in served:
                raise CollmError(f"upstream {url} does not serve the model {self.model!r}; it serves: "
                                 f"{', '.join(served[:10]) or 'none'} (--upstream-model)")

    def identity(self) -> dict:
        """The upstream's model id and the parameter count given (no sha256: the
        weights behind a server are not known): what a bank or policy made through
        one URL is checked against when served through another."""
        return {"name": self.model, "sha256": None, "params": self.params}

    # ---- generation ----
    async def _chat(self, i: int, prompt: Prompt, n: int, seed: int | None, kw: dict):
        messages = prompt.messages()
        kw = dict(kw)
        top_k = kw.pop("top_k", 0)
        # top_k is not in OpenAI's schema: vLLM, SGLang and the llama.cpp server read it
        extra = {"top_k": top_k} if top_k and self._top_k[i] else {}
        if prompt.assistant_prefix:
            messages.append({"role": "assistant", "content": prompt.assistant_prefix})
            extra.update({"continue_final_message": True, "add_generation_prompt": False})
        args = dict(model=await self._model_name(i), messages=messages, n=n, seed=seed, extra_body=extra or None, **kw)
        args = {k: v for k, v in args.items() if v is not None}  # unset, not null: some servers refuse nulls
        return await self._create(i, args)

    async def _create(self, i: int, args: dict):
        """One chat request, with log-probs and top_k where the upstream takes
        them. An upstream that answers 400 is asked again without top_k, then
        without log-probs, then without both; the first that works says which
        field it refuses, and that field is left out from then on."""
        import openai

        top_k = (args.get("extra_body") or {}).get("top_k")
        lp = self._logprobs[i]
        tries = [(lp, top_k)] + ([(lp, None)] if top_k else []) + ([(False, top_k)] if lp else []) + \
            ([(False, None)] if top_k and lp else [])
        for j, (use_lp, use_k) in enumerate(tries):
            extra = {k: v for k, v in (args.get("extra_body") or {}).items() if k != "top_k" or use_k}
            a = {**args, "extra_body": extra or None}
            a = {k: v for k, v in a.items() if v is not None}
            try:
                # top_logprobs=1: the llama.cpp server returns no logprobs without it
                async with self._slot():
                    r = await self._clients[i].chat.completions.create(
                        **(dict(logprobs=True, top_logprobs=1) if use_lp else {}), **a)
            except openai.BadRequestError:
                if j == len(tries) - 1:
                    raise
                continue
            if lp and not use_lp:
                self._logprobs[i] = False  # this upstream refuses logprobs: ask without from now on
            if top_k and not use_k:
                self._top_k[i] = False  # and this one top_k: it samples from its own default
            return r

    async def _generate_one(self, i: int, prompt: Prompt, n: int, seed: int | None, kw: dict) -> Generation:
        responses = []
        if self._multi_n[i] is not False:
            first = await self._chat(i, prompt, n, seed, kw)
            responses.append(first)
            got = len(first.choices)
            if n > 1:
                self._multi_n[i] = got >= n
        else:
            got = 0
        if got < n:  # single-sample upstream: fan the rest out as concurrent requests
            seeds = [None if seed is None else (seed + j) % (2**31) for j in range(got, n)]
            responses += await asyncio.gather(*(self._chat(i, prompt, 1, s, kw) for s in seeds))
        comps = []
        for r in responses:
            comps += _completions(r, kw.get("stop"))
        comps = comps[:n]
        prompt_tokens = responses[0].usage.prompt_tokens if responses[0].usage else 0
        return Generation(comps, usage_for(self.params, prompt_tokens, [c.tokens for c in comps]))

    async def _work(self, prompts, n: int, params: SamplingParams | None, offsets):
        """Every prompt's samples (one request per prompt, or fanned out), on the backend's loop."""
        prompts, params = self.check_request(prompts, n, params)
        first = seeding.firsts(offsets, len(prompts))
        kw = dict(temperature=params.temperature, top_p=params.top_p, top_k=int(params.top_k),
                  max_tokens=params.max_tokens, stop=list(params.stop) or None)
        # a prompt's samples from index `first` on: the upstream's own seeding of seed + first
        seeds = [None if params.seed is None else (params.seed + f) % (2**31) for f in first]
        return await asyncio.gather(*(self._call(self._generate_one, p, n, s, kw) for p, s in zip(prompts, seeds)))

    async def agenerate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                        offsets: Sequence[int] | None = None) -> list[Generation]:
        return await self._await_here(self._work(prompts, n, params, offsets))

    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None, cancel: threading.Event | None = None) -> list[Generation]:
        return self._run(self._work(prompts, n, params, offsets), cancel)

    async def _await_here(self, coro):
        """Await work that runs on the backend's own loop from any other event loop."""
        self._run(asyncio.sleep(0))  # make sure the loop exists
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # ---- prompt scoring ----
    async def _score_one(self, i: int, prompt: Prompt) -> PromptScore:
        before, question, after = self.template.split(prompt)
        text = before + question + after
        model = await self._model_name(i)
        async with self._slot():
            r = await self._clients[i].completions.create(model=model, prompt=text, max_tokens=1,
                                                          echo=True, logprobs=TOP_LOGPROBS, temperature=0.0)
        lp = r.choices[0].logprobs if r.choices else None
        if lp is None or not lp.token_logprobs or not lp.text_offset:
            raise CollmError(f"upstream {self.urls[i]} returns no prompt log-probs (echo with logprobs)")
        m = (r.usage.prompt_tokens if r.usage else None) or len(lp.token_logprobs) - 1
        m = min(m, len(lp.token_logprobs))
        offsets, tops = lp.text_offset[:m], (lp.top_logprobs or [None] * m)[:m]
        q0, q1 = len(before), len(before) + len(question)
        ends = list(offsets[1:]) + [len(text)]
        inside = [t for t, (a, z) in enumerate(zip(offsets, ends)) if a < q1 and z > q0]  # overlaps the question
        span = (inside[0], inside[-1] + 1) if inside else (0, 0)
        entropy = [None] + [topk_entropy(t) for t in tops[1:]]
        logprobs = [None] + [x for x in lp.token_logprobs[1:m]]
        return PromptScore([0] * m, entropy, logprobs, span, usage_for(self.params, m, 0))

    def score_prompt(self, prompts: Sequence[Prompt | str], cancel: threading.Event | None = None) -> list[PromptScore]:
        prompts = [p if isinstance(p, Prompt) else Prompt(str(p)) for p in prompts]

        async def work():
            return await asyncio.gather(*(self._call(self._score_one, p) for p in prompts))

        return self._run(work(), cancel)

    def describe(self) -> dict:
        return {**super().describe(), "upstreams": self.urls, "model": self.model,
                "multi_n": dict(zip(self.urls, self._multi_n))}


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    return str(e)[:500]


def _completions(resp, stop=None) -> list[Completion]:
    """One Completion per choice; token counts from logprobs, else from the usage."""
    choices = list(resp.choices)
    total = resp.usage.completion_tokens if resp.usage else 0
    chars = sum(len(c.message.content or "") for c in choices) or 1
    out = []
    for c in choices:
        text = c.message.content or ""
        content = c.logprobs.content if c.logprobs is not None and c.logprobs.content else None
        if content:
            lps = [t.logprob for t in content]
            tokens = len(lps)
        else:
            lps = []
            tokens = total if len(choices) == 1 else round(total * len(text) / chars)
        finish = "length" if c.finish_reason == "length" else "stop"
        matched, known = matched_stop(c, stop) if finish == "stop" else (None, True)
        out.append(Completion(text=text, tokens=tokens, logprob=float(sum(lps)), token_logprobs=lps,
                              finish_reason=finish, stop_reason=matched, stop_known=known))
    return out


def matched_stop(choice, stop) -> tuple[str | None, bool]:
    """(the stop string a choice stopped on, or None at end-of-sequence;
    whether the upstream said so). vLLM reports it as choice.stop_reason (the
    string, a stop token id, or null at end-of-sequence), SGLang as
    matched_stop; an upstream that reports neither (the llama.cpp server)
    leaves a stop on a requested string ambiguous."""
    if not stop:
        return None, True
    extra = getattr(choice, "model_extra", None) or {}
    for key in ("stop_reason", "matched_stop"):
        if key in extra:
            v = extra[key]
            return (v if isinstance(v, str) and v in stop else None), True
    return None, False


def reached(backend: RemoteBackend) -> RemoteBackend:
    """The backend after check() (every upstream reached and asked for its model); closed if that fails."""
    try:
        backend.check()
    except BaseException:
        backend.close()
        raise
    return backend
