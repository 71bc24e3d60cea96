"""The query API (docs/api.md) against a real tidemarkd fed by real agents: every endpoint's
answer matches docs/openapi.json and what the agents hold, and every malformed parameter is a
400 naming it.

Environment: as test_collector.py.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import unittest
import urllib.error
import urllib.parse
import urllib.request

from test_collector import Daemon, free_port, wait_for

SOURCE_ROOT = os.environ.get("TIDEMARK_SOURCE_ROOT",
                             os.path.join(os.path.dirname(__file__), "..", ".."))

AGENT = """
import sys, time, tidemark
class Widget(object):
    pass
WIDGETS = [Widget() for _ in range(500)]
tidemark.start(endpoint=sys.argv[1], service=sys.argv[2], interval=0.1, graph_every=4,
               max_overhead=0)
deadline = time.monotonic() + 30
while tidemark.status()["delivered"] < 8 and time.monotonic() < deadline:
    WIDGETS.append(Widget())
    WIDGETS[-1].payload = bytes(4096)  # Live bytes enough for sampled sites (2 KiB mean).
    time.sleep(0.02)
tidemark.stop()
print(len(WIDGETS))
"""


def check(schema, value, spec, where="$"):
    """A small JSON-schema check of what OpenAPI 3.0 uses here: $ref, type, nullable, enum,
    required, properties, items. Returns the problems found."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        return [] if schema.get("nullable") else ["%s is null" % where]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float)}
    kind = schema.get("type")
    if kind and (not isinstance(value, kinds[kind]) or
                 (kind in ("integer", "number") and isinstance(value, bool))):
        return ["%s is %r, not %s" % (where, value, kind)]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s is %r, not one of %s" % (where, value, schema["enum"]))
    for name in schema.get("required", []):
        if name not in value:
            problems.append("%s lacks %r" % (where, name))
    for name, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            problems += check(sub, value[name], spec, "%s.%s" % (where, name))
    if kind == "array":
        for i, item in enumerate(value):
            problems += check(schema["items"], item, spec, "%s[%d]" % (where, i))
    return problems


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        cls.workdir = tempfile.mkdtemp(prefix="api-", dir=base)
        cls.daemon = Daemon(cls.workdir).start()
        for service, sampling in (("shop", "2KiB"), ("search", "0")):
            out = subprocess.run([sys.executable, "-c", textwrap.dedent(AGENT),
                                  cls.daemon.endpoint, service],
                                 capture_output=True, text=True, timeout=90,
                                 env=dict(os.environ, TIDEMARK_SAMPLE_BYTES=sampling))
            assert out.returncode == 0, out.stderr
        with open(os.path.join(SOURCE_ROOT, "docs", "openapi.json")) as f:
            cls.spec = json.load(f)

    @classmethod
    def tearDownClass(cls):
        if cls.daemon.proc.poll() is None:
            cls.daemon.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def get(self, path, **params):
        url = "http://127.0.0.1:%d%s" % (self.daemon.http_port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def answer(self, path, **params):
        """The 200 answer of `path`, checked against the OpenAPI file."""
        status, body = self.get(path, **params)
        self.assertEqual(status, 200, body)
        schema = self.spec["paths"][path]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"]
        self.assertEqual(check(schema, body, self.spec), [], path)
        return body

    def test_every_endpoint_answers_as_the_openapi_file_says_with_what_the_agents_hold(self):
        answered = set()

        def answer(path, **params):
            answered.add(path)
            return self.answer(path, **params)

        services = {s["service"]: s for s in answer("/api/v1/services")["services"]}
        self.assertEqual(set(services), {"shop", "search"})
        self.assertEqual(services["shop"]["agents"], 1)
        self.assertGreater(services["shop"]["rss_bytes"], 0)

        agents = answer("/api/v1/agents", service="shop")["agents"]
        self.assertEqual(len(agents), 1)
        name = agents[0]["name"]
        self.assertRegex(name, r"^shop/[^/]+/\d+@\d+$")  # As alerts and `tidemark ls` name it.

        listed = answer("/api/v1/snapshots", agent=name)
        self.assertGreaterEqual(listed["total"], 8)
        refs = [s["ref"] for s in listed["snapshots"]]
        self.assertEqual(refs[0], "%s:%d" % (name, listed["snapshots"][0]["seq"]))
        graphs = answer("/api/v1/snapshots", agent="shop", kind="graph")["snapshots"]
        self.assertTrue(graphs and all(s["kind"] == "graph" for s in graphs))

        table = answer("/api/v1/snapshot/types", ref=name + ":last", top=1000)
        widgets = [t for t in table["types"] if t["type"] == "__main__.Widget"]
        self.assertEqual(len(widgets), 1)
        self.assertGreaterEqual(widgets[0]["count"], 500)

        diffed = answer("/api/v1/snapshot/diff", a=name + ":first", b=name + ":last", top=1000)
        growth = {t["type"]: t for t in diffed["types"]}
        self.assertGreater(growth["__main__.Widget"]["count_delta"], 0)

        series = answer("/api/v1/series", service="shop", **{"from": "-10m"}, step="1m",
                        types=100)
        self.assertEqual(series["agents"], 1)
        self.assertEqual(len(series["t_ns"]), 10)
        rows = {t["type"]: t for t in series["types"]}
        self.assertIn("__main__.Widget", rows)
        self.assertTrue([c for c in rows["__main__.Widget"]["count"] if c])
        self.assertTrue([r for r in series["rss_bytes"] if r])

        graph = name + ":%d" % graphs[0]["seq"]
        first_graph = name + ":%d" % graphs[-1]["seq"]
        retained = answer("/api/v1/graph/retained", ref=graph, top=5)
        self.assertEqual(len(retained["retainers"]), 5)
        self.assertGreaterEqual(retained["retainers"][0]["retained"],
                                retained["retainers"][-1]["retained"])
        top_level = answer("/api/v1/graph/dominated", ref=graph, top=3)
        self.assertGreater(top_level["children_total"], 0)
        below = answer("/api/v1/graph/dominated", ref=graph,
                       address=top_level["children"][0]["address"])
        self.assertEqual(below["object"]["address"], top_level["children"][0]["address"])
        why = answer("/api/v1/graph/why", ref=graph, type="__main__.Widget")
        self.assertGreaterEqual(why["targets"], 500)
        self.assertIn("WIDGETS", why["paths"][0]["text"])
        self.assertEqual(why["holders"][0]["type"], "list")
        diffed = answer("/api/v1/graph/diff", a=first_graph, b=graph)
        widgets = [g for g in diffed["groups"] if g["type"] == "__main__.Widget"]
        self.assertTrue(widgets and widgets[0]["count"] > 0, diffed)
        self.assertIn("WIDGETS", widgets[0]["holders"][0]["path"])
        sites = answer("/api/v1/sites", ref=graph)
        self.assertTrue(sites["sampled"])
        self.assertTrue(sites["sites"], sites)
        self.assertFalse(answer("/api/v1/sites", ref="search:last")["sampled"])

        self.assertEqual(answer("/api/v1/alerts", all="1")["firing"], [])
        self.assertEqual(answer("/api/v1/reports")["reports"], [])
        self.assertIn("agents.log", answer("/api/v1/store/list")["names"])
        # store/file answers bytes: CliThroughTheApi reads the whole store through it.
        gets = {p for p, operations in self.spec["paths"].items()
                if "get" in operations and p != "/api/v1/store/file"}
        self.assertEqual(answered, gets, "every documented endpoint is tested")

    def test_malformed_parameters_are_400_naming_the_parameter(self):
        # shop's last snapshot may be a summary (stop() can send one after the last graph).
        status, graphs = self.get("/api/v1/snapshots", agent="shop", kind="graph")
        self.assertEqual(status, 200, graphs)
        graph = graphs["snapshots"][0]["ref"]
        cases = [
            ("/api/v1/snapshots", {}, 400, "agent"),
            ("/api/v1/snapshots", {"agent": "shop", "limit": "many"}, 400, "limit"),
            ("/api/v1/snapshots", {"agent": "shop", "kind": "heap"}, 400, "kind"),
            ("/api/v1/snapshots", {"agent": "nobody"}, 404, "agent"),
            ("/api/v1/snapshot/types", {"ref": "shop:999999"}, 404, "ref"),
            ("/api/v1/snapshot/types", {"ref": "shop"}, 400, "ref"),
            ("/api/v1/snapshot/diff", {"a": "shop:first", "b": "search:last"}, 400, "b"),
            ("/api/v1/series", {}, 400, "service"),
            ("/api/v1/series", {"service": "shop", "agent": "shop"}, 400, "agent"),
            ("/api/v1/series", {"service": "shop", "step": "fast"}, 400, "step"),
            ("/api/v1/series", {"service": "shop", "from": "yesterday"}, 400, "from"),
            ("/api/v1/series", {"service": "shop", "from": "-2d", "step": "1s"}, 400, "step"),
            ("/api/v1/series", {"service": "shop", "from": "now", "to": "-1h"}, 400, "from"),
            ("/api/v1/series", {"service": "nothing"}, 404, "service"),
            ("/api/v1/services", {"colour": "blue"}, 400, "colour"),
            ("/api/v1/reports", {"id": "nope"}, 404, "id"),
            ("/api/v1/graph/retained", {"ref": "shop:1"}, 400, "ref"),  # A summary.
            ("/api/v1/graph/why", {"ref": graph}, 400, "type"),
            ("/api/v1/graph/dominated", {"ref": graph, "address": "here"}, 400, "address"),
            ("/api/v1/graph/diff", {"a": graph, "b": "search:last"}, 400, "b"),
        ]
        for path, params, status, parameter in cases:
            got, body = self.get(path, **params)
            self.assertEqual((got, body.get("parameter")), (status, parameter), (path, body))
            self.assertTrue(body["error"])
        got, body = self.get("/api/v1/nothing-here")
        self.assertEqual(got, 404)
        self.assertIn("/api/v1/services", body["error"])
        self.assertGreaterEqual(self.daemon.metric("tidemark_api_errors_total"), len(cases))


class GraphLimit(unittest.TestCase):
    def test_a_graph_over_the_object_limit_is_refused_before_it_is_loaded(self):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        workdir = tempfile.mkdtemp(prefix="api-limit-", dir=base)
        self.addCleanup(shutil.rmtree, workdir, True)
        daemon = Daemon(workdir)
        daemon.write_config('[http]\nlisten = "127.0.0.1:%d"\nmax_graph_objects = 10\n'
                            % daemon.http_port)
        daemon.start()
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(AGENT), daemon.endpoint,
                              "big"], capture_output=True, text=True, timeout=90)
        self.assertEqual(out.returncode, 0, out.stderr)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/snapshots?agent=big&kind=graph"
                                    % daemon.http_port, timeout=30) as r:
            seq = json.loads(r.read())["snapshots"][0]["seq"]
        url = "http://127.0.0.1:%d/api/v1/graph/retained?ref=big%%3A%d" % (daemon.http_port, seq)
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        self.assertEqual(refused.exception.code, 400)
        body = json.loads(refused.exception.read())
        self.assertEqual(body["parameter"], "ref")
        self.assertIn("over the query API's limit of 10 (http.max_graph_objects)", body["error"])
        self.assertEqual(daemon.metric("tidemark_api_graph_cache_misses_total"), 0)


LIVE_AGENT = """
import sys, time, tidemark
tidemark.start(endpoint=sys.argv[1], service="live", interval=0.2, graph_every=100000,
               max_overhead=0)
while True:
    time.sleep(0.1)
"""

TOKEN = "api-test-token-0123456789abcdef"


def request(port, path, token=None, method="GET"):
    """(status, headers, body) of one request."""
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    if token:
        r.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(r, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Security(unittest.TestCase):
    """http.token_file: every request but /healthz and the console's files needs the token; the
    one write request takes a graph snapshot, once per agent per http.snapshot_interval."""

    def setUp(self):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        self.workdir = tempfile.mkdtemp(prefix="api-token-", dir=base)
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.token_file = os.path.join(self.workdir, "token")
        with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(TOKEN + "\n")

    def daemon(self, http):
        daemon = Daemon(self.workdir)
        daemon.write_config("[http]\n" + http % {"port": daemon.http_port,
                                                  "token": self.token_file})
        return daemon

    def test_off_loopback_without_a_token_tidemarkd_refuses_to_start_naming_the_key(self):
        daemon = self.daemon('listen = "0.0.0.0:%(port)d"\n')
        out = subprocess.run([os.environ["TIDEMARKD"], "--config", daemon.config],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("http.token_file", out.stdout + out.stderr)

    def test_requests_need_the_token_and_every_answer_has_a_strict_csp(self):
        daemon = self.daemon('listen = "127.0.0.1:%(port)d"\ntoken_file = "%(token)s"\n')
        daemon.start()
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)
        port = daemon.http_port
        for path in ("/api/v1/services", "/metrics", "/alerts"):
            for token in (None, TOKEN[:-1], TOKEN + "x", "x" * len(TOKEN)):
                status, headers, body = request(port, path, token)
                self.assertEqual(status, 401, (path, token))
                self.assertIn("Bearer", headers["WWW-Authenticate"])
            self.assertEqual(request(port, path, TOKEN)[0], 200, path)
        for path in ("/healthz", "/", "/console/console.js", "/console/chart.min.js"):
            status, headers, body = request(port, path)
            self.assertEqual(status, 200, path)
            csp = headers["Content-Security-Policy"]
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        page = request(port, "/")[2].decode()
        self.assertNotIn("<script>", page)  # No inline script: the CSP would refuse it.
        self.assertGreaterEqual(self.metric(port, "tidemark_http_unauthorized_total"), 12)

    def metric(self, port, name):
        text = request(port, "/metrics", TOKEN)[2].decode()
        return float([l for l in text.splitlines() if l.startswith(name + " ")][0].split()[1])

    def test_a_graph_snapshot_now_reaches_the_store_once_per_interval(self):
        daemon = self.daemon('listen = "127.0.0.1:%(port)d"\ntoken_file = "%(token)s"\n'
                             'snapshot_interval = "1h"\n')
        daemon.start()
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)
        port = daemon.http_port
        agent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LIVE_AGENT),
                                  daemon.endpoint], stdout=subprocess.DEVNULL)
        self.addCleanup(lambda: (agent.kill(), agent.wait()))

        def graphs():
            status, _, body = request(port, "/api/v1/snapshots?agent=live&kind=graph", TOKEN)
            return json.loads(body)["total"] if status == 200 else None
        wait_for(lambda: graphs() is not None and self.summaries(port) >= 2, 60, "the agent")
        before = graphs()
        self.assertEqual(request(port, "/api/v1/agents/snapshot?agent=live", None, "POST")[0], 401)
        status, _, body = request(port, "/api/v1/agents/snapshot?agent=live", TOKEN, "POST")
        self.assertEqual(status, 202, body)
        self.assertTrue(json.loads(body)["agent"].startswith("live/"))
        with open(os.path.join(SOURCE_ROOT, "docs", "openapi.json")) as f:
            spec = json.load(f)
        schema = spec["paths"]["/api/v1/agents/snapshot"]["post"]["responses"]["202"][
            "content"]["application/json"]["schema"]
        self.assertEqual(check(schema, json.loads(body), spec), [])
        wait_for(lambda: graphs() > before, 60, "the graph snapshot asked for")
        status, headers, body = request(port, "/api/v1/agents/snapshot?agent=live", TOKEN, "POST")
        self.assertEqual(status, 429, body)
        self.assertGreater(int(headers["Retry-After"]), 3000)
        self.assertEqual(json.loads(body)["parameter"], "agent")
        status, _, body = request(port, "/api/v1/agents/snapshot?agent=nobody", TOKEN, "POST")
        self.assertEqual((status, json.loads(body)["parameter"]), (404, "agent"))
        self.assertEqual(request(port, "/api/v1/services", TOKEN, "POST")[0], 405)
        self.assertEqual(self.metric(port, "tidemark_api_snapshots_requested_total"), 1)

    def summaries(self, port):
        status, _, body = request(port, "/api/v1/snapshots?agent=live&kind=summary", TOKEN)
        return json.loads(body)["total"] if status == 200 else 0

    def test_without_a_token_the_write_request_is_refused(self):
        daemon = self.daemon('listen = "127.0.0.1:%(port)d"\n')
        daemon.start()
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)
        status, _, body = request(daemon.http_port, "/api/v1/agents/snapshot?agent=x", None, "POST")
        self.assertEqual(status, 403)
        self.assertIn("http.token_file", json.loads(body)["error"])


    def test_without_a_token_a_request_for_another_host_is_refused(self):
        # DNS rebinding: a page of evil.example, its name pointed at 127.0.0.1, must not read
        # the API through the operator's browser. Loopback names, the listen address and
        # http.allowed_hosts are answered; /healthz always.
        daemon = self.daemon('listen = "127.0.0.1:%(port)d"\nallowed_hosts = ["tidemark.internal"]\n')
        daemon.start()
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)

        def status(path, host):
            with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30) as s:
                s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                           % (path, host)).encode())
                answer = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            return int(answer.split(b" ", 2)[1])

        for host in ("evil.example", "evil.example:%d" % daemon.http_port, "10.0.0.1",
                     "localhost.evil.example"):
            for path in ("/api/v1/services", "/metrics", "/alerts",
                         "/api/v1/store/file?path=agents.log"):
                self.assertEqual(status(path, host), 421, (host, path))
        self.assertEqual(status("/healthz", "evil.example"), 200)
        for host in ("127.0.0.1:%d" % daemon.http_port, "localhost", "LOCALHOST:1",
                     "[::1]:%d" % daemon.http_port, "127.0.0.2", "tidemark.internal",
                     "Tidemark.Internal:443"):
            self.assertEqual(status("/api/v1/services", host), 200, host)
        self.assertEqual(daemon.metric("tidemark_http_wrong_host_total"), 16)


class CliThroughTheApi(unittest.TestCase):
    """`tidemark VERB --collector URL` prints what `tidemark VERB --store DIR` prints on the
    collector's host: the CLI reads the same files through the query API."""

    @classmethod
    def setUpClass(cls):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        cls.workdir = tempfile.mkdtemp(prefix="api-cli-", dir=base)
        cls.token_file = os.path.join(cls.workdir, "token")
        with open(os.open(cls.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(TOKEN + "\n")
        cls.daemon = Daemon(cls.workdir)
        cls.daemon.write_config('[http]\nlisten = "127.0.0.1:%d"\ntoken_file = "%s"\n'
                                % (cls.daemon.http_port, cls.token_file))
        cls.daemon.start()
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(AGENT), cls.daemon.endpoint,
                              "shop"], capture_output=True, text=True, timeout=90,
                             env=dict(os.environ, TIDEMARK_SAMPLE_BYTES="16KiB"))
        assert out.returncode == 0, out.stderr
        cls.url = "http://127.0.0.1:%d" % cls.daemon.http_port

    @classmethod
    def tearDownClass(cls):
        if cls.daemon.proc.poll() is None:
            cls.daemon.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def run_cli(self, args, env=None):
        return subprocess.run([os.environ["TIDEMARK_CLI"]] + args, capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, **(env or {})))

    def test_every_reading_verb_prints_the_same_through_the_api(self):
        graph = json.loads(self.run_cli(["ls", "--json", "--store", self.daemon.store]).stdout)
        snaps = graph["services"][0]["agents"][0]["snapshots"]
        graphs = ["shop:%d" % s["seq"] for s in snaps if s["kind"] == "graph"]
        self.assertGreaterEqual(len(graphs), 2)
        verbs = [["ls"], ["ls", "--all", "--bytes"], ["summary", "shop:last"],
                 ["diff", "shop:first", "shop:last"], ["alerts", "--all"], ["reports"],
                 ["growth", "--window", "1h"], ["summary", graphs[-1], "--json"],
                 ["why", graphs[-1], "__main__.Widget"], ["gdiff", graphs[0], graphs[-1]],
                 ["sites", graphs[-1]], ["types", graphs[-1]], ["retained", graphs[-1]],
                 ["export", graphs[-1], "--format", "folded"]]
        token = {"TIDEMARK_TOKEN_FILE": self.token_file}
        for verb in verbs:
            local = self.run_cli(verb + ["--store", self.daemon.store])
            remote = self.run_cli(verb + ["--collector", self.url], token)
            self.assertEqual(local.returncode, 0, (verb, local.stderr))
            self.assertEqual((remote.returncode, remote.stdout, remote.stderr),
                             (0, local.stdout, local.stderr), verb)
        by_env = self.run_cli(["ls"], dict(token, TIDEMARK_COLLECTOR=self.url + "/"))
        self.assertEqual(by_env.stdout, self.run_cli(["ls", "--store", self.daemon.store]).stdout)

    def test_errors_name_the_token_the_url_and_the_snapshot(self):
        refused = self.run_cli(["ls", "--collector", self.url])
        self.assertEqual(refused.returncode, 1)
        self.assertIn("TIDEMARK_TOKEN_FILE", refused.stderr)
        bad = self.run_cli(["ls", "--collector", "127.0.0.1:1"])
        self.assertEqual(bad.returncode, 2)
        self.assertIn("http://HOST:PORT", bad.stderr)
        both = self.run_cli(["ls", "--collector", self.url, "--store", self.daemon.store])
        self.assertEqual(both.returncode, 2)
        missing = self.run_cli(["summary", "shop:999999", "--collector", self.url],
                               {"TIDEMARK_TOKEN_FILE": self.token_file})
        self.assertEqual(missing.returncode, 1)
        self.assertIn("999999", missing.stderr)
        down = self.run_cli(["ls", "--collector", "http://127.0.0.1:%d" % free_port()])
        self.assertEqual(down.returncode, 1)
        self.assertIn("cannot ask tidemarkd", down.stderr)

    def test_alerts_and_reports_never_say_all_clear_when_a_collector_did_not_answer(self):
        # No token, a wrong token, a collector down, one of two down: an error naming the
        # collector and why, never "no alert is firing" or an empty list with exit 0.
        wrong = os.path.join(self.daemon.store, "..", "wrong-token")
        with open(wrong, "w") as f:
            f.write("not-the-token\n")
        down = "http://127.0.0.1:%d" % free_port()
        token = {"TIDEMARK_TOKEN_FILE": self.token_file}
        cases = [(self.url, {}, "TIDEMARK_TOKEN_FILE"),
                 (self.url, {"TIDEMARK_TOKEN_FILE": wrong}, "the one given was refused"),
                 (down, token, "cannot ask tidemarkd at " + down)]
        for verb in (["alerts"], ["alerts", "--json"], ["alerts", "--all"], ["reports"],
                     ["reports", "--json"]):
            for collector, env, said in cases + ([(self.url + "," + down, token, down)]
                                                 if verb[0] == "alerts" else []):
                with self.subTest(verb=verb, collector=collector, env=env):
                    done = self.run_cli(verb + ["--collector", collector], env)
                    self.assertEqual((done.returncode, done.stdout), (1, ""), done.stderr)
                    self.assertIn(said, done.stderr)

    def test_no_verb_answers_empty_from_a_collector_that_refused_or_did_not_answer(self):
        # Every reading verb against a refusing (no token, a wrong token) and an unreachable
        # collector: non-zero, nothing on stdout, the collector named on stderr.
        graph = json.loads(self.run_cli(["ls", "--json", "--store", self.daemon.store]).stdout)
        snaps = graph["services"][0]["agents"][0]["snapshots"]
        graphs = ["shop:%d" % s["seq"] for s in snaps if s["kind"] == "graph"]
        verbs = [["ls"], ["ls", "--json"], ["summary", "shop:last"],
                 ["diff", "shop:first", "shop:last"], ["growth", "--window", "1h"],
                 ["growth", "--json"], ["why", graphs[-1], "__main__.Widget"],
                 ["gdiff", graphs[0], graphs[-1]], ["sites", graphs[-1]], ["types", graphs[-1]],
                 ["retained", graphs[-1]], ["export", graphs[-1], "--format", "folded"]]
        wrong = os.path.join(self.daemon.store, "..", "wrong-token-2")
        with open(wrong, "w") as f:
            f.write("not-the-token-either\n")
        down = "http://127.0.0.1:%d" % free_port()
        for verb in verbs:
            for collector, env in ((self.url, {}), (self.url, {"TIDEMARK_TOKEN_FILE": wrong}),
                                   (down, {"TIDEMARK_TOKEN_FILE": self.token_file})):
                with self.subTest(verb=verb, collector=collector, env=env):
                    done = self.run_cli(verb + ["--collector", collector], env)
                    self.assertNotEqual(done.returncode, 0, done.stdout)
                    self.assertEqual(done.stdout, "")
                    self.assertTrue("TIDEMARK_TOKEN_FILE" in done.stderr
                                    or "refused" in done.stderr or down in done.stderr,
                                    done.stderr)

    def test_store_files_stay_inside_the_store(self):
        for path in ("../tidemarkd.toml", "/etc/passwd", "index/../../token", "./agents.log"):
            status, _, body = request(self.daemon.http_port, "/api/v1/store/file?path="
                                      + urllib.parse.quote(path, safe=""), TOKEN)
            self.assertEqual((status, json.loads(body)["parameter"]), (400, "path"), path)
        status, _, body = request(self.daemon.http_port, "/api/v1/store/file?path=agents.log",
                                  TOKEN)
        self.assertEqual(status, 200)
        with open(os.path.join(self.daemon.store, "agents.log"), "rb") as f:
            self.assertEqual(body, f.read())


MOVING_AGENT = """
import sys, time, tidemark
class Widget(object):
    pass
WIDGETS = []
tidemark.start(endpoint=sys.argv[1], service="moving", interval=0.1, max_overhead=0)
while not sys.stdin.readline().startswith("stop"):
    WIDGETS.extend(Widget() for _ in range(100))
tidemark.stop()
"""


class CliAcrossCollectors(unittest.TestCase):
    """`tidemark ls|growth|alerts --collector URL1,URL2` merges the collectors' stores: an agent
    that moved from one to the other is one agent with all its snapshots."""

    def test_an_agent_that_moved_is_one_agent_with_every_snapshot(self):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        daemons = []
        for name in ("one", "two"):
            workdir = tempfile.mkdtemp(prefix="api-%s-" % name, dir=base)
            self.addCleanup(shutil.rmtree, workdir, True)
            daemon = Daemon(workdir).start()
            self.addCleanup(lambda d=daemon: d.proc.poll() is None and d.stop())
            daemons.append(daemon)
        agent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(MOVING_AGENT),
                                  ",".join(d.endpoint for d in daemons)],
                                 stdin=subprocess.PIPE, text=True,
                                 env=dict(os.environ, TIDEMARK_FAILOVER="1"))
        self.addCleanup(lambda: agent.poll() is None and (agent.kill(), agent.wait()))

        def stored(daemon):
            out = subprocess.run([os.environ["TIDEMARK_CLI"], "ls", "--json", "--all", "--store",
                                  daemon.store], capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                return set()
            return {s["seq"] for svc in json.loads(out.stdout)["services"]
                    for a in svc["agents"] for s in a["snapshots"]}
        wait_for(lambda: any(len(stored(d)) >= 5 for d in daemons), 60, "the agent's home")
        home = max(daemons, key=lambda d: len(stored(d)))
        away = daemons[1] if home is daemons[0] else daemons[0]
        home.stop()
        wait_for(lambda: len(stored(away)) >= 5, 60, "the agent on the other collector")
        home.start()
        agent.stdin.write("stop\n")
        agent.stdin.close()
        self.assertEqual(agent.wait(timeout=60), 0)
        urls = ",".join("http://127.0.0.1:%d" % d.http_port for d in daemons)
        merged = json.loads(self.run_cli(["ls", "--json", "--all", "--collector", urls]).stdout)
        agents = [a for svc in merged["services"] for a in svc["agents"]]
        self.assertEqual(len(agents), 1, merged)
        seqs = sorted(s["seq"] for s in agents[0]["snapshots"])
        self.assertEqual(seqs, sorted(stored(home) | stored(away)))
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        growth = self.run_cli(["growth", "--json", "--window", "1h", "--collector", urls])
        self.assertEqual(growth.returncode, 0, growth.stderr)
        self.assertEqual([(s["service"], s["agents"]) for s in json.loads(growth.stdout)],
                         [("moving", 1)])
        alerts = self.run_cli(["alerts", "--collector", urls])
        self.assertEqual((alerts.returncode, alerts.stdout), (0, "no alert is firing\n"))
        one = self.run_cli(["summary", "moving:last", "--collector", urls])
        self.assertEqual(one.returncode, 2)
        self.assertIn("ls, growth and alerts merge several", one.stderr)

    def run_cli(self, args):
        return subprocess.run([os.environ["TIDEMARK_CLI"]] + args, capture_output=True, text=True,
                              timeout=120)


if __name__ == "__main__":
    unittest.main()
