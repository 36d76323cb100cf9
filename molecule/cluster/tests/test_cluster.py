"""Several hosts (issue 13): two model hosts (the Ollama test double), two
gateway nodes, Redis on the first gateway, on the scenario's podman network.
(The client token rotation across both gateways: test_rotation.py.)

Which model host served a request is read from its Ollama log: one Gin line
per request, `| 200 | ... | <client address> | POST "/api/chat"`, as Ollama
writes them."""
import json
import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from gateway.load import ChatLoad

ROOT = Path(__file__).resolve().parents[3]
GW1, GW2 = "ccproxy-cluster-gw1", "ccproxy-cluster-gw2"
M1, M2 = "ccproxy-cluster-m1", "ccproxy-cluster-m2"
ADDRESS = {GW1: "10.89.77.11", GW2: "10.89.77.12", M1: "10.89.77.21", M2: "10.89.77.22"}
MODEL = "claude-3-5-sonnet"


def sh(container, script, check=True, timeout=60):
    out = subprocess.run(["podman", "exec", container, "bash", "-c", script],
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{container}: {script}\n{out.stdout}{out.stderr}"
    return out


def chats_served(container, since):
    """POST /api/chat requests the model host's Ollama answered with 200 since `since`."""
    log = sh(container, f"journalctl -u ollama --no-pager -o cat --since @{int(since)}").stdout
    return sum(1 for line in log.splitlines() if "| 200 |" in line and 'POST    "/api/chat"' in line)


def quiet_since():
    """A start time for chats_served() that no earlier request shares: the
    journal's --since counts whole seconds."""
    time.sleep(1.5)
    return time.time()


def playbook(*args, timeout=600):
    out = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "-e", f"@{os.environ['CCPROXY_EXTRA_VARS']}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    return out.stdout


def client(gw, token, retries=0):
    return openai.OpenAI(base_url=gw.base_url, api_key=token, max_retries=retries,
                         http_client=httpx.Client(verify=gw.ssl_context(), timeout=60))


def chat(c, prompt="Reply with OK.", **kwargs):
    r = c.chat.completions.create(model=MODEL, max_tokens=4,
                                  messages=[{"role": "user", "content": prompt}], **kwargs)
    assert r.choices[0].message.content
    return r


def test_both_gateways_accept_the_same_token_and_certificate(gateway, gateway2):
    """The same client token works on both nodes, and both serve the same
    certificate (the operator's), which the client's one CA file verifies."""
    token = gateway.token()
    for gw in (gateway, gateway2):
        chat(client(gw, token))
    certs = []
    for gw in (gateway, gateway2):
        port = int(gw.origin.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                gw.ssl_context().wrap_socket(raw, server_hostname=gw.server_name) as tls:
            certs.append(tls.getpeercert(binary_form=True))
    assert certs[0] == certs[1]


def test_requests_spread_over_both_model_hosts(gateway):
    since = time.time() - 1
    c = client(gateway, gateway.token())
    # The edge admits 4 requests in flight per client (traefik_max_in_flight_per_client).
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: chat(c), range(40)))
    time.sleep(1)  # the journal
    served = {m: chats_served(m, since) for m in (M1, M2)}
    assert sum(served.values()) >= 40, served
    assert min(served.values()) >= 5, f"weighted routing should use both model hosts: {served}"


def test_a_model_host_stopped_under_load_costs_no_request(gateway, gateway2):
    """Ollama on one model host stops while both gateways carry load from
    clients without retries: LiteLLM retries on the other host and cools the
    stopped one down. When it returns it takes requests again."""
    loads = [ChatLoad(gw, gateway.token(name), MODEL, max_retries=0, rps=8)
             for gw, name in ((gateway, "demo"), (gateway2, "ci-probe"))]
    for load in loads:
        load.start()
    try:
        time.sleep(3)
        sh(M1, "systemctl stop ollama")
        time.sleep(10)
        stopped_at = time.time()
        time.sleep(5)
        # Nothing reached the stopped host, everything the other.
        assert chats_served(M1, stopped_at) == 0
        assert chats_served(M2, stopped_at) > 0
        sh(M1, "systemctl start ollama")
        back = time.time()
        # Back in rotation after its cooldown (litellm_cooldown_seconds, 30 s).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and chats_served(M1, back) == 0:
            time.sleep(3)
        recovered = time.time() - back
    finally:
        sh(M1, "systemctl start ollama", check=False)
        for load in loads:
            load.finish()
    for load in loads:
        print(f"model host stopped: {load.summary()}")
    print(f"model host back in rotation after {recovered:.0f} s")
    assert all(load.ok > 50 for load in loads), [load.summary() for load in loads]
    assert [load.failed for load in loads] == [[], []]
    assert chats_served(M1, back) > 0, "the returned model host took no request within 90 s"


def relay_server_up(gateway_container, model_host):
    """The relay's health check of `model_host` (Traefik's metrics): True,
    False, or None when Traefik reports no such server."""
    metrics = sh(gateway_container, "curl -s http://127.0.0.1:8082/metrics").stdout
    for line in metrics.splitlines():
        if line.startswith("traefik_service_server_up{") and f'service="model-{model_host}@file"' in line:
            return line.rsplit(" ", 1)[1] == "1"
    return None


def test_a_model_host_that_does_not_answer_is_taken_out_within_seconds(gateway):
    """A model host that answers nothing at all (powered off, cut off: every
    packet to its Ollama is dropped) while two clients without retries send
    4 requests a second between them, each on its own (two clients: the
    edge admits 4 requests in flight per client). A request the relay sends
    to the silent host on a new connection gets a 504 after the dial timeout
    (2 s), which LiteLLM cools down and retries on the other host; one sent
    on a kept-alive connection waits until its client gives up (15 s here).
    The relay's health check (every 5 s, timeout 3 s) takes the host out
    within 8 s, and from then on the relay answers 503 for it at once. So
    every request that starts 10 s after the cut succeeds, served by the
    other host, and the host is back in the relay's rotation once it
    answers. What the first 10 s cost is printed (-s), not asserted."""
    tokens = [gateway.token("demo"), gateway.token("ci-probe")]
    records = []  # (started, seconds, outcome)

    def one(n):
        started = time.monotonic()
        c = openai.OpenAI(base_url=gateway.base_url, api_key=tokens[n % 2], max_retries=0,
                          http_client=httpx.Client(verify=gateway.ssl_context(), timeout=15))
        try:
            chat(c)
            outcome = "ok"
        except (openai.APIError, AssertionError) as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:100]}"
        finally:
            c.close()
        records.append((started, time.monotonic() - started, outcome))

    with ThreadPoolExecutor(32) as pool:
        for n in range(12):
            pool.submit(one, n)
            time.sleep(0.25)
        cut = time.monotonic()
        sh(M2, "nft add table inet ccproxy_test_blackhole && nft add chain inet ccproxy_test_blackhole input "
               "'{ type filter hook input priority -10; }' && "
               "nft add rule inet ccproxy_test_blackhole input tcp dport 11434 drop")
        try:
            window, n = None, 0
            while time.monotonic() < cut + 30:
                if window is None and time.monotonic() > cut + 10:
                    window = time.time()
                    up_during = relay_server_up(GW1, M2)
                pool.submit(one, n)
                n += 1
                time.sleep(0.25)
            served_m1, served_m2 = chats_served(M1, window), chats_served(M2, window)
        finally:
            # It comes back as a host that was off does: without the
            # connections it had. (Requests that waited on them would
            # otherwise reach it late, when the drop ends, and be counted by
            # later tests.)
            sh(M2, "systemctl restart ollama; nft delete table inet ccproxy_test_blackhole", check=False)
    restored = time.monotonic()
    while not relay_server_up(GW1, M2) and time.monotonic() < restored + 20:
        time.sleep(0.5)
    up_again = relay_server_up(GW1, M2)
    after = [r for r in records if r[0] >= cut + 10]
    first = [r for r in records if cut <= r[0] < cut + 10]
    print(f"model host silent: {len(after)} requests from 10 s after the cut, "
          f"{sum(r[2] != 'ok' for r in after)} failed; in the first 10 s {len(first)}, of them "
          f"{sum(r[2] != 'ok' for r in first)} failed and the slowest took {max(r[1] for r in first):.1f} s; "
          f"errors: {sorted({r[2] for r in records if r[2] != 'ok'})}")
    assert len(after) >= 60, len(after)
    assert [r[2] for r in after if r[2] != "ok"] == []
    assert served_m2 == 0 and served_m1 > 0, (served_m1, served_m2)
    assert up_during is False, "the relay's health check did not take the silent host out within 10 s"
    assert up_again, "the relay's health check did not put the host back within 20 s of its return"


def test_a_model_no_host_has_falls_back_to_its_fallback(gateway):
    """ccproxy_models says 32B falls back to 7B: with the 32B model gone from
    both model hosts, a request for its alias is answered by the 7B model."""
    big = "qwen2.5-coder:32b-instruct"
    c = client(gateway, gateway.token())
    try:
        for m in (M1, M2):
            sh(m, f"curl -sf -X DELETE http://{ADDRESS[m]}:11434/api/delete -d '{{\"model\": \"{big}\"}}'")
        r = c.chat.completions.create(model="qwen-quality", max_tokens=8,
                                      messages=[{"role": "user", "content": "Reply with OK."}])
        assert "qwen2.5-coder:7b-instruct" in r.choices[0].message.content, r.choices[0].message.content
    finally:
        for m in (M1, M2):
            sh(m, f"curl -sf http://{ADDRESS[m]}:11434/api/pull -d '{{\"model\": \"{big}\", \"stream\": false}}'",
               timeout=120)


def test_model_hosts_admit_only_the_gateways():
    """Ollama has no authentication: beyond loopback its port admits the
    gateway (and monitoring) hosts only; so does Redis's."""
    probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/{}' && echo open || echo closed"
    for model_host in (M1, M2):
        addr = ADDRESS[model_host]
        for gw in (GW1, GW2):
            assert sh(gw, probe.format(addr, 11434)).stdout.strip() == "open"
        other = M2 if model_host == M1 else M1
        assert sh(other, probe.format(addr, 11434)).stdout.strip() == "closed"
        # From this machine, across the podman bridge.
        with pytest.raises(OSError):
            socket.create_connection((addr, 11434), timeout=5).close()
    assert sh(GW2, probe.format(ADDRESS[GW1], 6379)).stdout.strip() == "open"
    assert sh(M1, probe.format(ADDRESS[GW1], 6379)).stdout.strip() == "closed"
    with pytest.raises(OSError):
        socket.create_connection((ADDRESS[GW1], 6379), timeout=5).close()
    # Ollama listens on the private address, not on every interface.
    listening = sh(M1, "ss -Hltn 'sport = :11434'").stdout
    assert f"{ADDRESS[M1]}:11434" in listening and "0.0.0.0:11434" not in listening


def test_litellm_reaches_the_model_hosts_only_through_the_relay():
    """LiteLLM reaches the model hosts through its gateway's Traefik (the
    model relay on loopback) and Redis directly: its egress rules admit Redis's
    port and nothing else beyond loopback."""
    rules = sh(GW2, "nft list table inet ccproxy_litellm_egress").stdout
    assert f"ip daddr {ADDRESS[GW1]} tcp dport 6379 accept" in rules
    assert ADDRESS[M1] not in rules and ADDRESS[M2] not in rules
    as_litellm = "runuser -u litellm -- timeout 5 bash -c 'exec 3<>/dev/tcp/{}/{}' && echo open || echo closed"
    assert sh(GW2, as_litellm.format(ADDRESS[GW1], 6379)).stdout.strip() == "open"
    assert sh(GW2, as_litellm.format(ADDRESS[M1], 11434)).stdout.strip() == "closed"
    assert sh(GW2, as_litellm.format(ADDRESS[GW1], 8080)).stdout.strip() == "closed"
    relayed = sh(GW2, "runuser -u litellm -- curl -s http://127.0.0.1:8084/ollama/ccproxy-cluster-m1/api/version").stdout
    assert json.loads(relayed)["version"]
    # Only the calls LiteLLM makes pass the relay: nothing that deletes or pulls models.
    for method, path in (("DELETE", "/api/delete"), ("POST", "/api/pull"), ("GET", "/api/tags")):
        code = sh(GW2, f"curl -s -o /dev/null -w '%{{http_code}}' -X {method} "
                       f"http://127.0.0.1:8084/ollama/ccproxy-cluster-m1{path} -d '{{}}'").stdout
        assert code == "404", (method, path, code)


def test_response_cache_is_opt_in_and_shared(gateway, gateway2):
    """With litellm_cache on, a request that asks for the cache is answered
    from Redis the second time, on either gateway; one that does not ask
    always reaches a model host, unless its model has `cache: true`."""
    token = gateway.token()
    prompt = f"cache test {uuid.uuid4()}"
    since = quiet_since()
    chat(client(gateway, token), prompt)
    chat(client(gateway, token), prompt)
    time.sleep(1)
    assert sum(chats_served(m, since) for m in (M1, M2)) == 2, "without opt-in nothing is cached"

    prompt = f"cache test {uuid.uuid4()}"
    since = quiet_since()
    first = chat(client(gateway, token), prompt, extra_body={"cache": {"use-cache": True}})
    # LiteLLM writes the answer to Redis after it has sent it, in the
    # background: one CI run's second request came before the write.
    time.sleep(3)
    second = chat(client(gateway2, token), prompt, extra_body={"cache": {"use-cache": True}})
    time.sleep(1)
    assert sum(chats_served(m, since) for m in (M1, M2)) == 1, "the second request should come from the cache"
    assert second.choices[0].message.content == first.choices[0].message.content

    # Per model: the gateways' map (host_vars/) caches the 32B model's
    # aliases without the request asking.
    prompt = f"cache test {uuid.uuid4()}"
    since = quiet_since()
    answers = []
    for gw in (gateway, gateway2):
        r = client(gw, token).chat.completions.create(
            model="qwen-quality", max_tokens=8, messages=[{"role": "user", "content": prompt}])
        answers.append(r.choices[0].message.content)
        time.sleep(3)
    assert sum(chats_served(m, since) for m in (M1, M2)) == 1, "a cached model's second request should come from the cache"
    assert answers[0] == answers[1] and "32b" in answers[0], answers


def test_gateways_serve_while_redis_is_down(gateway, gateway2):
    """Redis holds shared state only: with it stopped both gateways keep
    serving (each with its own router state), and monitoring alerts."""
    sh(GW1, "systemctl stop redis-server")
    try:
        for gw in (gateway, gateway2):
            c = client(gw, gateway.token())
            for _ in range(5):
                chat(c)
        # CcproxyRedisDown fires on the monitoring host, the first gateway
        # (probe every 5 s, for 10 s in the tests).
        deadline = time.monotonic() + 90
        firing = []
        while time.monotonic() < deadline and not firing:
            alerts = json.loads(sh(GW1, "curl -s http://127.0.0.1:9090/api/v1/alerts").stdout)
            firing = [a for a in alerts["data"]["alerts"]
                      if a["labels"]["alertname"] == "CcproxyRedisDown" and a["state"] == "firing"]
            time.sleep(3)
        assert firing, "CcproxyRedisDown did not fire within 90 s"
    finally:
        sh(GW1, "systemctl start redis-server")
    chat(client(gateway, gateway.token()))


def test_rate_limit_is_per_gateway_node(gateway, gateway2):
    """The per-client limit is kept by each node in memory (a Redis-backed
    limiter would fail closed with Redis): a client that has used its burst
    on one node still has one on the other. Effective limit across N nodes:
    N times the per-node limit, when the load balancer spreads its requests."""
    limits = ["-e", "traefik_rate_limit_average=30", "-e", "traefik_rate_limit_burst=10",
              "-e", "traefik_rate_limit_period=1m"]
    playbook("--limit", "ccproxy_gateway_hosts", "--tags", "traefik_configure", *limits,
             str(ROOT / "playbooks" / "site.yml"))
    try:
        time.sleep(2)  # the file provider's reload
        token = gateway.token("ci-probe")

        def burst(gw):
            with httpx.Client(verify=gw.ssl_context(), timeout=10) as c:
                codes = [c.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {token}"}).status_code
                         for _ in range(25)]
            return codes.count(200), codes.count(429)

        ok1, limited1 = burst(gateway)
        ok2, limited2 = burst(gateway2)
        print(f"rate limit 30/min, burst 10: node 1 {ok1} ok {limited1} limited; node 2 {ok2} ok {limited2} limited")
        assert 10 <= ok1 <= 13 and limited1 >= 12
        assert 10 <= ok2 <= 13 and limited2 >= 12
    finally:
        playbook("--limit", "ccproxy_gateway_hosts", "--tags", "traefik_configure",
                 str(ROOT / "playbooks" / "site.yml"))
