"""Verifiers: step splitting, aggregation, self-certainty, the probe, and the
remote reward model against a real HTTP server on 127.0.0.1 (good answers,
garbage, errors, an unreachable port)."""

from __future__ import annotations

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from collm.bank.format import Bank, BankProblem, BankSample
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.strategies.steps import StepCompletion
from collm.types import Completion
from collm.verifiers import Probe, RemoteRM, SelfCertainty, aggregate, get_verifier, split_steps
from collm.verifiers.base import step_texts, step_token_logprobs


def comp(text, lps, finish="stop"):
    return Completion(text, len(lps), float(sum(lps)), list(lps), finish)


# ---- steps and aggregation ----
def test_split_steps_blank_lines_and_step_markers_tile_the_text():
    t = "First we add.\n\nThen we multiply.\n\n\nStep 3: so 12.\nStep 4: done \\boxed{12}"
    spans = split_steps(t)
    assert "".join(t[a:b] for a, b in spans) == t
    assert [t[a:b].strip() for a, b in spans] == ["First we add.", "Then we multiply.", "Step 3: so 12.",
                                                    "Step 4: done \\boxed{12}"]
    assert split_steps("") == [] and split_steps("\n\n") == []
    assert len(split_steps("one step only")) == 1


def test_aggregations():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "last") == 0.8
    assert aggregate(s, "min") == 0.5
    assert aggregate(s, "prod") == pytest.approx(0.36)
    assert aggregate(s, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(CollmError, match="unknown aggregation"):
        aggregate(s, "max")


# ---- self-certainty ----
def test_self_certainty_outcome_and_steps():
    lps = [math.log(0.5)] * 2 + [math.log(0.9)] * 2
    c = comp("aa bb\n\ncc dd", lps)
    v = SelfCertainty()
    assert v.score([Prompt("q")], [c])[0] == pytest.approx(math.sqrt(0.5 * 0.9))
    # tokens assigned to steps by characters: 2 and 2 here
    assert v.score_steps([Prompt("q")], [c])[0] == pytest.approx([0.5, 0.9])
    # a completion built step by step carries its exact token split
    sc = StepCompletion("aa bb\n\ncc dd", 4, sum(lps), lps, steps=["aa bb\n\n", "cc dd"], step_tokens=[1, 3])
    assert step_texts(sc) == ["aa bb\n\n", "cc dd"]
    assert step_token_logprobs(sc) == [lps[:1], lps[1:]]
    got = SelfCertainty("process", "min")([Prompt("q")], [sc])[0]
    assert got == pytest.approx(min(0.5, math.exp((math.log(0.5) + 2 * math.log(0.9)) / 3)))
    # no tokens at all: nothing to trust
    assert v.score([Prompt("q")], [comp("", [])])[0] == 0.0


# ---- the probe ----
def _labelled(seed=0, k=400):
    rng = np.random.default_rng(seed)
    comps, labels = [], []
    for i in range(k):
        ok = i % 2 == 0
        mean = -0.2 if ok else -0.9
        lps = list(np.minimum(rng.normal(mean, 0.3, size=int(rng.integers(20, 60))), 0.0))
        comps.append(comp("x " * len(lps), lps))
        labels.append(ok)
    return comps, labels


def test_probe_learns_to_rank_and_round_trips(tmp_path):
    comps, labels = _labelled()
    p = Probe(features="tokens").fit_completions(comps, labels)
    test, tl = _labelled(seed=1, k=100)
    s = np.array(p.score([Prompt("q")] * len(test), test))
    assert s[np.array(tl)].mean() > 0.8 > 0.2 > s[~np.array(tl)].mean()
    path = tmp_path / "probe.json"
    p.save(path)
    q = get_verifier(f"probe:{path}")
    assert np.allclose(q.score([Prompt("q")] * 5, test[:5]), s[:5])
    assert len(q.score_steps([Prompt("q")], [comp("a b\n\nc d", [-0.1, -0.2, -0.3, -0.4])])[0]) == 2


def test_probe_fits_a_bank_and_refuses_what_it_cannot_learn(tmp_path):
    def prob(i, ok_lp):
        samples = [BankSample("1", True, 30, 30 * ok_lp), BankSample("2", False, 30, -27.0),
                   BankSample(None, False, 400, -100.0, "length")]
        return BankProblem(i, 1, 50, 20, [], [], BankSample("1", True, 30, -3.0), samples)

    bank = Bank("mem", [prob(i, -0.1 - 0.01 * i) for i in range(10)])
    p = Probe().fit_bank(bank)
    assert p.fitted_on["source"] == "bank"
    good, bad = comp("a", [-0.1] * 30), comp("b", [-0.9] * 30)
    sg, sb = p.score([Prompt("q")] * 2, [good, bad])
    assert sg > sb
    with pytest.raises(CollmError, match="both correct and wrong"):
        Probe().fit([[0.0, 1.0], [1.0, 2.0]], [1, 1])
    with pytest.raises(CollmError, match="hidden state"):
        Probe(features="hidden").fit_completions([good, bad], [1, 0])
    with pytest.raises(CollmError, match="not fitted"):
        Probe().score([Prompt("q")], [good])
    (tmp_path / "bad.json").write_text("{\"features\": 1}")
    with pytest.raises(CollmError, match="not a probe file"):
        Probe.load(tmp_path / "bad.json")
    with pytest.raises(CollmError, match="not found"):
        get_verifier("probe:/nonexistent/probe.json")


def test_probe_uses_a_hidden_state_when_the_engine_attaches_one():
    comps, labels = _labelled(k=200)
    for c, ok in zip(comps, labels):
        c.hidden = [1.0 if ok else -1.0, 0.0]
    p = Probe(features="hidden").fit_completions(comps, labels)
    assert len(p.mu) == 6 + 2


def test_get_verifier_names():
    assert isinstance(get_verifier(None), SelfCertainty)
    assert isinstance(get_verifier("remote:http://127.0.0.1:1/pooling"), RemoteRM)
    with pytest.raises(CollmError, match="unknown verifier"):
        get_verifier("oracle")
    with pytest.raises(CollmError, match="probe:PATH"):
        get_verifier("probe")
    with pytest.raises(CollmError, match="unknown verifier mode"):
        get_verifier("self-certainty", mode="both")


# ---- the remote reward model, against a real local server ----
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        texts = body["input"]

        def p(t):  # "good" answers score high
            return 0.9 if "good" in t else 0.2

        path = self.path
        if path == "/classify":
            out = {"data": [{"index": i, "probs": [1 - p(t), p(t)]} for i, t in reversed(list(enumerate(texts)))]}
        elif path == "/pooling":  # a PRM: one [p_wrong, p_right] row per step
            out = {"data": [{"data": [[0.5, 0.8 if "good" in s else 0.1] for s in t.split("\n\n")[1:]]} for t in texts]}
        elif path == "/orm":  # a bare logit per input
            out = {"scores": [math.log(p(t) / (1 - p(t))) for t in texts]}
        elif path == "/garbage":
            self._send(200, b"<html>hello</html>")
            return
        elif path == "/shape":
            out = {"result": "ok"}
        elif path == "/nan":
            out = {"scores": [float("nan")] * len(texts)}
        elif path == "/count":
            out = {"scores": [0.5]}
        elif path == "/wide":
            out = {"data": [{"data": [0.1, 0.2, 0.7]} for _ in texts]}
        else:
            self._send(500, b"internal error")
            return
        self._send(200, json.dumps(out).encode())

    def _send(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


PROMPTS = [Prompt("What is 2 + 2?"), Prompt("What is 2 + 2?")]
CANDS = [comp("a good step\n\nanother good step \\boxed{4}", [-0.1] * 6),
         comp("a bad step\n\nthen \\boxed{5}", [-0.1] * 5)]


def test_remote_classify_and_orm_scores(server):
    url, srv = server
    v = get_verifier(url + "/classify", model="rm")
    assert v(PROMPTS, CANDS) == pytest.approx([0.9, 0.2])  # "index" order restored
    path, body = srv.requests[-1]
    assert body["model"] == "rm" and body["input"][0].startswith("What is 2 + 2?\n\na good step")
    v = get_verifier(url + "/orm")  # bare logits pass through a sigmoid
    assert v(PROMPTS, CANDS) == pytest.approx([0.9, 0.2])


def test_remote_process_scores_from_a_prm_and_from_prefixes(server):
    url, srv = server
    v = get_verifier(url + "/pooling", mode="process", aggregation="min")
    assert v.score_steps(PROMPTS, CANDS) == [pytest.approx([0.8, 0.8]), pytest.approx([0.1, 0.1])]
    assert v(PROMPTS, CANDS) == pytest.approx([0.8, 0.1])
    # an outcome RM gives step scores by scoring every prefix
    n0 = len(srv.requests)
    v = get_verifier(url + "/orm", mode="process", aggregation="mean")
    assert v.score_steps(PROMPTS, CANDS) == [pytest.approx([0.9, 0.9]), pytest.approx([0.2, 0.2])]
    assert len(srv.requests) == n0 + 2  # whole answers, then the one-step prefixes


@pytest.mark.parametrize("path,match", [
    ("/garbage", "not JSON"), ("/shape", "unknown shape"), ("/nan", "not a finite number"),
    ("/count", "1 scores for 2 inputs"), ("/wide", "list of 3 numbers"), ("/boom", "HTTP 500"),
])
def test_remote_garbage_is_a_clear_error(server, path, match):
    url, _ = server
    with pytest.raises(CollmError, match=match):
        get_verifier(url + path)(PROMPTS, CANDS)


def test_remote_check_fails_before_use_or_warns_with_a_fallback(server, capsys):
    url, srv = server
    n0 = len(srv.requests)
    get_verifier(url + "/classify").check()
    assert len(srv.requests) == n0 + 1
    with pytest.raises(CollmError, match="not JSON"):
        get_verifier(url + "/garbage").check()
    v = get_verifier(url + "/garbage", fallback="self-certainty")
    v.check()
    assert "using self-certainty scores instead" in capsys.readouterr().err


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_remote_unreachable_is_an_error_unless_a_fallback_is_asked_for(capsys):
    url = f"http://127.0.0.1:{_free_port()}/pooling"
    with pytest.raises(CollmError, match="unreachable"):
        get_verifier(url, timeout=2)(PROMPTS, CANDS)
    v = get_verifier(url, fallback="self-certainty", timeout=2)
    assert v(PROMPTS, CANDS) == pytest.approx(SelfCertainty()(PROMPTS, CANDS))
    assert v.describe()["fallback_batches"] == 1
    assert "using self-certainty scores instead" in capsys.readouterr().err
    with pytest.raises(CollmError, match="http:// or https://"):
        RemoteRM("127.0.0.1:8000")
