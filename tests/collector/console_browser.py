"""The web console in a real browser: Debian's headless Chromium driven by chromedriver
(python3-selenium), against a real tidemarkd that needs a token, fed by real agents in a
leaking and a steady Python process. Each page loads with no console error; the service page's
chart has points for the leaking type; the alert page shows the holder's path; a click (and
Enter) on a block of the graph page's icicle shows that object's path to a root. A screenshot
of each page is written to TIDEMARK_SCREENSHOTS (the build directory under ctest).

Run by ctest with Debian's python3 (where python3-selenium is); the leaking apps run under
TIDEMARK_APP_PYTHON, an interpreter the agent was built for.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from marionette import Firefox
from test_collector import Daemon, wait_for
from test_pipeline import APP, FAST_RULE, INVESTIGATE_FAST, RUNNER

APP_PYTHON = os.environ["TIDEMARK_APP_PYTHON"]
SCREENSHOTS = os.environ.get("TIDEMARK_SCREENSHOTS") or tempfile.gettempdir()
TOKEN = "console-test-token-0123456789abcdef"


class ConsoleInABrowser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        cls.workdir = tempfile.mkdtemp(prefix="console-", dir=base)
        cls.procs = []
        token_file = os.path.join(cls.workdir, "token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(TOKEN + "\n")
        with open(os.path.join(cls.workdir, "leakyapp.py"), "w") as f:
            f.write(APP)
        cls.daemon = Daemon(cls.workdir)
        cls.daemon.write_config(FAST_RULE + INVESTIGATE_FAST + """
        [http]
        listen = "127.0.0.1:%d"
        token_file = "%s"
        """ % (cls.daemon.http_port, token_file))
        cls.daemon.start()
        env = dict(os.environ, PYTHONPATH=cls.workdir + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   TIDEMARK_GRAPH_REQUEST_INTERVAL="0.5", TIDEMARK_SAMPLE_BYTES="2KiB")
        for mode in ("records", "warm"):
            cls.procs.append(subprocess.Popen(
                [APP_PYTHON, "-c", RUNNER, mode, cls.daemon.endpoint, "300"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        cls.alert = wait_for(cls.investigated_alert, 120, "the leak alert with its holder")
        cls.browser = cls.open_browser()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "browser", None):
            cls.browser.quit()
        for p in cls.procs:
            p.kill()
            p.wait()
        if cls.daemon.proc and cls.daemon.proc.poll() is None:
            cls.daemon.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def api(cls, path, token=TOKEN, method="GET", **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (cls.daemon.http_port, path,
                                                   urllib.parse.urlencode(params))
        request = urllib.request.Request(url, method=method)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    @classmethod
    def investigated_alert(cls):
        status, body = cls.api("alerts")
        for a in body.get("firing", []) if status == 200 else []:
            if a["service"] == "records" and a.get("holders") and len(a.get("graphs", [])) == 2:
                return a
        return None

    @classmethod
    def open_browser(cls):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        browser.set_page_load_timeout(60)
        return browser

    # -- helpers --

    def url(self, fragment=""):
        return "http://127.0.0.1:%d/%s" % (self.daemon.http_port, fragment)

    def show(self, fragment, name):
        """Opens a page, waits until it is drawn, checks the browser logged no error, and keeps
        a screenshot."""
        before = self.browser.execute_script("return document.body.dataset.ready || ''") \
            if self.browser.current_url.startswith(self.url()) else None
        if before is None:
            self.browser.get(self.url(fragment))
        else:
            self.browser.execute_script("location.hash = arguments[0]", fragment)
        WebDriverWait(self.browser, 60).until(
            lambda b: b.execute_script("return document.body.dataset.ready || ''") not in ("", before)
            and not b.find_element(By.ID, "busy").text)
        self.assertEqual(self.errors(), [], "console errors on " + fragment)
        self.assertEqual(self.browser.find_elements(By.CSS_SELECTOR, "main .error"), [],
                         "an error shown on " + fragment)
        self.browser.save_screenshot(os.path.join(SCREENSHOTS, "console-%s.png" % name))

    def errors(self):
        return [e["message"] for e in self.browser.get_log("browser") if e["level"] == "SEVERE"]

    def signed_in(self):
        if not self.browser.current_url.startswith(self.url()):
            self.browser.get(self.url())
            form = WebDriverWait(self.browser, 30).until(
                lambda b: b.find_element(By.ID, "token-form").is_displayed()
                and b.find_element(By.ID, "token-form"))
            self.browser.save_screenshot(os.path.join(SCREENSHOTS, "console-token.png"))
            form.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
            WebDriverWait(self.browser, 60).until(
                lambda b: b.find_elements(By.CSS_SELECTOR, "main h1"))
            self.browser.get_log("browser")  # The 401 that asked for the token is not an error.

    # -- the pages --

    def test_1_fleet_lists_both_services_and_the_firing_alert(self):
        self.signed_in()
        self.show("#/", "fleet")
        text = self.browser.find_element(By.ID, "main").text
        self.assertIn("records", text)
        self.assertIn("warm", text)
        self.assertIn(self.alert["id"], text)

    def test_2_service_chart_has_points_for_the_leaking_type(self):
        self.signed_in()
        self.show("#/service/records?range=1h", "service")
        datasets = self.browser.execute_script(
            "return Chart.getChart(document.querySelector('main canvas')).data.datasets"
            ".map(d => [d.label, d.data.length])")
        points = dict(datasets)
        self.assertIn("leakyapp.Record", points)
        self.assertGreater(points["leakyapp.Record"], 0)

    def test_3_alert_page_shows_the_holder_path_and_links_the_graphs(self):
        self.signed_in()
        self.show("#/alert/" + urllib.parse.quote(self.alert["id"], safe=""), "alert")
        holders = [e.text for e in self.browser.find_elements(By.CSS_SELECTOR, "code.holder")]
        self.assertIn("leakyapp.RECORDS", holders)
        links = [a.get_attribute("href") for a in self.browser.find_elements(By.CSS_SELECTOR, "main a")]
        self.assertTrue(any("#/graph/" in l for l in links), links)

    def test_4_snapshot_table_sorts_and_diffs(self):
        self.signed_in()
        graphs = self.alert["graphs"]
        self.show("#/snapshot/%s?diff=%s" % (urllib.parse.quote(graphs[1], safe=""),
                                            urllib.parse.quote(graphs[0], safe="")), "snapshot")
        main = self.browser.find_element(By.ID, "main").text
        self.assertIn("Growth from " + graphs[0], main)
        first_type = self.browser.find_element(By.CSS_SELECTOR, "table tbody tr td").text
        self.assertEqual(first_type, "bytes")  # Each Record's 200-byte payload grows fastest.

    def test_5_graph_icicle_click_shows_the_path_to_root(self):
        self.signed_in()
        self.show("#/graph/" + urllib.parse.quote(self.alert["graphs"][1], safe=""), "graph")
        blocks = self.browser.find_elements(By.CSS_SELECTOR, ".icicle:not(.flame) button")
        self.assertGreater(len(blocks), 1)
        for block, press in ((blocks[0], lambda b: b.click()),
                             (blocks[1], lambda b: b.send_keys(Keys.ENTER))):
            press(block)
            self.assertEqual(block.get_attribute("aria-pressed"), "true")
            WebDriverWait(self.browser, 30).until(
                lambda b: b.find_elements(By.CSS_SELECTOR, "ol.paths li code"))
            path = self.browser.find_element(By.CSS_SELECTOR, "ol.paths li code").text
            self.assertTrue(path, "no path to root shown")
        self.assertEqual(self.errors(), [])
        self.browser.save_screenshot(os.path.join(SCREENSHOTS, "console-graph-clicked.png"))
        self.assertTrue(self.browser.find_elements(By.CSS_SELECTOR, ".flame button"),
                        "no allocation flame graph: the agent sampled")

    def test_6_phone_width_has_no_sideways_scroll(self):
        self.signed_in()
        self.browser.set_window_size(390, 844)
        try:
            self.show("#/service/warm?range=6h", "service-phone")
            overflow = self.browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            self.assertLessEqual(overflow, 0)
        finally:
            self.browser.set_window_size(1280, 800)

    def test_7_first_chart_time_is_recorded(self):
        self.signed_in()
        self.browser.get(self.url("#/service/records?range=1h"))
        WebDriverWait(self.browser, 60).until(
            lambda b: b.execute_script("return window.tidemark && window.tidemark.firstChartMs()"))
        ms = self.browser.execute_script("return window.tidemark.firstChartMs()")
        print("time to first chart: %.0f ms" % ms)
        self.assertGreater(ms, 0)

    def test_8_firefox_draws_every_page_without_an_error(self):
        """The same pages in Debian's Firefox ESR (through Marionette): signed in with the
        token form, each page drawn with no uncaught error and no error shown, the service
        chart with points for the leaking type, an icicle click showing a path to a root."""
        firefox = Firefox()
        try:
            firefox.get(self.url())
            form = firefox.wait(lambda: firefox.find_all("#token-form input#token"), 30,
                                "the token form")
            firefox.send_keys(form[0], TOKEN + "\ue007")  # Enter.
            firefox.wait(lambda: firefox.find_all("main h1"), 60, "the fleet page")
            graphs = self.alert["graphs"]
            pages = [
                ("#/", "fleet"),
                ("#/service/records?range=1h", "service"),
                ("#/alert/" + urllib.parse.quote(self.alert["id"], safe=""), "alert"),
                ("#/snapshot/%s?diff=%s" % (urllib.parse.quote(graphs[1], safe=""),
                                           urllib.parse.quote(graphs[0], safe="")), "snapshot"),
                ("#/graph/" + urllib.parse.quote(graphs[1], safe=""), "graph"),
            ]
            for fragment, name in pages:
                before = firefox.script("return document.body.dataset.ready || ''")
                firefox.script("location.hash = arguments[0]", fragment)
                firefox.wait(lambda: firefox.script(
                    "return (document.body.dataset.ready || '') !== arguments[0] &&"
                    " !document.getElementById('busy').textContent", before), 60, name)
                self.assertEqual(firefox.script("return window.tidemark.errors()"), [],
                                 "uncaught errors in Firefox on " + fragment)
                self.assertEqual(firefox.find_all("main .error"), [],
                                 "an error shown in Firefox on " + fragment)
                firefox.screenshot(os.path.join(SCREENSHOTS, "console-firefox-%s.png" % name))
                if name == "service":
                    points = dict(firefox.script(
                        "return Chart.getChart(document.querySelector('main canvas')).data"
                        ".datasets.map(d => [d.label, d.data.length])"))
                    self.assertGreater(points.get("leakyapp.Record", 0), 0)
                if name == "graph":
                    block = firefox.find_all(".icicle:not(.flame) button")[0]
                    firefox.click(block)
                    path = firefox.wait(lambda: firefox.script(
                        "const c = document.querySelector('ol.paths li code');"
                        " return c && c.textContent"), 30, "a path to a root")
                    self.assertTrue(path)
                    self.assertEqual(firefox.script("return window.tidemark.errors()"), [])
        finally:
            firefox.quit()


if __name__ == "__main__":
    unittest.main()
