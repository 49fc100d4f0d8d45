#!/usr/bin/env python3
"""The playground, tested in a real browser (headless Chromium, driven through
chromedriver's WebDriver protocol; Python's standard library only).

  python3 tests/playground/browser_test.py --native-bin build/bin [--screenshot FILE]

It builds and assembles the page (scripts/playground.sh --no-serve, with the
committed weights docs/playground/weights), serves it on a free local port, and:

  1. draws digits stroke by stroke with WebDriver pointer actions (mouse and
     touch events the page cannot tell from a person's) and checks the digit
     the page shows;
  2. shows the committed test images x_test[0..2] through the page and checks
     its probabilities against the native ch11-predict's for the same images
     and weights, to 1e-5;
  3. checks that missing weights, weights of the wrong shape and a missing
     .wasm file each put a visible message on the page;
  4. takes a screenshot of the page with a drawn digit and its maps.

It also prints the page's time for one forward pass and the native one
(measured, never asserted). Exit status 77 (ctest's "skipped") with the reason
when Chromium, chromedriver, Emscripten or the native build is missing; with
NN_REQUIRE_BROWSER=1 in the environment, that is a failure instead.

Everything it makes (the site, chromedriver's and Chromium's temporary files,
Chromium's profile) lives in one folder of its own in the temporary folder
(a short path: Chromium's socket there must fit in 108 bytes), and
chromedriver and Chromium run with TMPDIR in it and NN_PLAYGROUND_TEST naming
it in their environment. In every outcome (a pass, a failure, an exception,
SIGTERM or SIGHUP) it stops every process that carries that name, removes the
folder, and fails if either is still there. With --runs DIR (ctest gives the
build tree's playground-runs) it also leaves a link to the folder in DIR while
it runs, and

  python3 tests/playground/browser_test.py --clean-up DIR

(ctest's Playground.leftovers, run after the test however it ended: a timeout
kills it with SIGKILL, which nothing can catch) stops the processes of every
run linked there, removes their folders and fails if there was anything.
"""
import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = 77
TOLERANCE = 1e-5
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # WebDriver's key for an element reference
MARK = "NN_PLAYGROUND_TEST"  # in chromedriver's environment, and so in every Chromium process's

# Digits as strokes in the 280x280 canvas's pixels: lists of points, each list
# one press-move-release of the mouse.
DIGITS = {
    1: [[(150, 45), (146, 100), (142, 160), (138, 235)]],
    7: [[(75, 60), (140, 58), (205, 60), (180, 110), (150, 170), (125, 235)]],
    0: [[(140, 45), (95, 65), (75, 140), (95, 215), (140, 238), (185, 215), (205, 140), (185, 65), (140, 45), (128, 50)]],
    4: [[(110, 45), (85, 150), (200, 150)], [(170, 60), (165, 150), (160, 240)]],
}
DRAWN_LAST = 4  # the digit in the screenshot
DRAWN_BY_TOUCH = 7  # drawn a second time with a finger (touch events)


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def skip(reason):
    if os.environ.get("NN_REQUIRE_BROWSER") == "1":  # CI, after installing them: a skip would hide a failure
        fail(f"{reason} (and NN_REQUIRE_BROWSER=1)")
    print(f"SKIPPED: {reason}", flush=True)
    sys.exit(SKIP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_npy_float32(path):
    """The values and shape of a little-endian float32 .npy file (format 1.0)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        fail(f"{path}: not a .npy file")
    length = struct.unpack_from("<H", data, 8)[0]
    header = data[10:10 + length].decode("latin1")
    if "'<f4'" not in header or "'fortran_order': False" not in header:
        fail(f"{path}: not C-ordered float32: {header}")
    shape = tuple(int(v) for v in header.split("(")[1].split(")")[0].split(",") if v.strip())
    values = struct.unpack(f"<{len(data[10 + length:]) // 4}f", data[10 + length:])
    return values, shape


def npy_bytes(shape, values):
    """A float32 .npy file (format 1.0), for the wrong-shape weights."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + \
        struct.pack(f"<{len(values)}f", *values)


class WebDriver:
    """The few WebDriver commands the test needs, over HTTP to chromedriver."""

    def __init__(self):
        self.process = self.session = None

    def start(self, chromedriver, chromium, work):
        """chromedriver and Chromium keep everything in work: their temporary
        files (TMPDIR) and Chromium's profile. main's clean_up stops them,
        however the test ends (this too may fail halfway)."""
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        tmp = os.path.join(work, "tmp")
        os.makedirs(tmp, exist_ok=True)
        env = dict(os.environ, TMPDIR=tmp, **{MARK: work})
        # A process group of its own: clean_up stops chromedriver and the browser it started together.
        self.process = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=self.log, stderr=self.log,
                                        env=env, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if self._call("GET", "/status")["value"]["ready"]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        else:
            fail("chromedriver did not start")
        options = {"binary": chromium,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1100,1180", "--hide-scrollbars", "--force-device-scale-factor=1",
                            f"--user-data-dir={os.path.join(work, 'profile')}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method, path, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            fail(f"WebDriver {method} {path}: {e.code} {e.read().decode(errors='replace')[:2000]}")

    def call(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def go(self, url):
        self.call("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def element(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def displayed(self, element):
        return self.call("GET", f"/element/{element}/displayed")

    def text(self, element):
        return self.call("GET", f"/element/{element}/text")

    def wait_for_page(self, seconds=60):
        """Waits until the page says it is ready or shows an error; returns its status."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            status = self.js("return window.playground ? window.playground.status : 'no page';")
            if status in ("ready", "error"):
                return status
            time.sleep(0.1)
        fail(f"the page neither became ready nor showed an error in {seconds} s")

    def strokes(self, element, strokes, pointer="mouse", size=280):
        """Presses, moves and releases the mouse (or a finger: pointer="touch")
        along each stroke, in the element's pixels."""
        actions = []
        for points in strokes:
            at = lambda p: {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: element},
                            "x": int(p[0] - size / 2), "y": int(p[1] - size / 2)}
            actions.append(at(points[0]))
            actions.append({"type": "pointerDown", "button": 0})
            for a, b in zip(points, points[1:]):  # several small moves per segment, as a hand makes
                for k in range(1, 6):
                    actions.append(at((a[0] + (b[0] - a[0]) * k / 5, a[1] + (b[1] - a[1]) * k / 5)))
            actions.append({"type": "pointerUp", "button": 0})
        self.call("POST", "/actions", {"actions": [{"type": "pointer", "id": pointer,
                                                    "parameters": {"pointerType": pointer}, "actions": actions}]})
        self.call("DELETE", "/actions")

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(png)
        os.replace(tmp, path)  # never a half-written figure

    def close(self):
        """Asks chromedriver to close the browser; clean_up makes sure."""
        if self.session:
            try:
                self._call("DELETE", f"/session/{self.session}", timeout=20)
            except BaseException:  # (fail() raises SystemExit) the browser is going away either way
                pass
            self.session = None


def our_processes(marked, groups=()):
    """{pid: (process group, command)} of the live processes that are ours:
    those whose environment has MARK set to a folder for which marked(folder)
    holds (chromedriver, Chromium's browser process, its crash handlers, which
    leave chromedriver's process group), and those in one of groups (Chromium's
    zygotes and what they start, which are given a clean environment)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            if stat[0] == b"Z":  # a zombie: gone, only not yet reaped
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or not ours to read
            continue
        group = int(stat[2])
        if group in groups or any(entry.startswith(MARK.encode() + b"=") and
                                  marked(entry[len(MARK) + 1:].decode(errors="replace")) for entry in env):
            found[int(pid)] = (group, command[:120])
    return found


def stop_processes(marked, group=None):
    """Stops chromedriver's process group and every process of ours (see
    our_processes): SIGTERM, then SIGKILL to what is left after 5 s. Returns
    what it found running ({pid: command})."""
    groups = {group} if group else set()
    groups |= {g for g, _ in our_processes(marked, groups).values()}
    groups.discard(os.getpgrp())  # never the test's own
    found = our_processes(marked, groups)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        for pid in our_processes(marked, groups):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while time.time() < deadline and our_processes(marked, groups):
            time.sleep(0.1)
    return {pid: command for pid, (_, command) in found.items()}


def clean_up(work, driver):
    """Stops chromedriver and Chromium and removes work, in every outcome;
    then checks that nothing of them is left. Returns what is left (empty
    when all went)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not stop the cleaning halfway
        signal.signal(sig, signal.SIG_IGN)
    process = driver.process if driver else None
    if driver:
        driver.close()
    group = process.pid if process else None  # chromedriver leads a process group (start_new_session)
    stop_processes(lambda folder: folder == work, group)
    if process:
        try:
            process.wait(timeout=10)  # reaped: no zombie chromedriver
        except subprocess.TimeoutExpired:
            pass
    shutil.rmtree(work, ignore_errors=True)
    left = [f"{pid}: {command}" for pid, (_, command) in
            our_processes(lambda folder: folder == work, {group} if group else ()).items()]
    if process and process.poll() is None:
        left.append(f"chromedriver {process.pid}")
    if os.path.exists(work):
        left.append(f"the folder {work}")
    return left


def clean_up_after(runs):
    """Playground.leftovers: stops and removes what the runs linked in the
    folder runs left (a run removes its link once it has cleaned up)."""
    found, still = [], []
    links = sorted(os.listdir(runs)) if os.path.isdir(runs) else []
    for name in links:
        link = os.path.join(runs, name)
        work = os.readlink(link) if os.path.islink(link) else None
        found.append(f"the run {work or link}")
        if work:
            ours = lambda folder, work=work: folder == work
            found += [f"process {pid}: {command}" for pid, command in stop_processes(ours).items()]
            if os.path.exists(work):
                found.append(f"the folder {work}")
                shutil.rmtree(work, ignore_errors=True)
            still += [f"process {pid}" for pid in our_processes(ours)] + ([work] if os.path.exists(work) else [])
        os.unlink(link) if os.path.islink(link) else shutil.rmtree(link, ignore_errors=True)
    for line in found:
        print(f"left by the browser test: {line}", flush=True)
    if still:
        print(f"FAIL: could not remove {still}", flush=True)
    if found:
        print("FAIL: the browser test left the above behind (now stopped and removed)", flush=True)
        sys.exit(1)
    print(f"ok: no run left anything (no link in {runs})", flush=True)


def stop_on_signal(signum, frame):
    """SIGTERM, SIGHUP: a failure, raised as SystemExit so that the finally
    blocks stop the browser and remove the folder."""
    print(f"FAIL: stopped by signal {signal.Signals(signum).name}", flush=True)
    sys.exit(1)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass


def serve(folder):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def make_bad_sites(site):
    """site/wrong-shape: the committed set, but conv2d's kernel has 16 filters
    in place of 32 (a manifest that matches it, so that only the shape is wrong);
    site/no-module: the page without nn_playground.wasm."""
    no_module = os.path.join(site, "no-module")
    os.mkdir(no_module)
    for name in ("index.html", "page.js", "nn_playground.js"):
        shutil.copy(os.path.join(site, name), no_module)
    good, bad = os.path.join(site, "weights"), os.path.join(site, "wrong-shape")
    shutil.copytree(good, bad)
    kernel = npy_bytes((3, 3, 1, 16), [0.0] * (3 * 3 * 16))
    with open(os.path.join(bad, "conv2d.kernel.npy"), "wb") as f:
        f.write(kernel)
    with open(os.path.join(good, "manifest.txt")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(bad, "manifest.txt"), "w") as f:
        for line in lines:
            if line.startswith("file conv2d.kernel.npy "):
                line = f"file conv2d.kernel.npy {len(kernel)} crc32 {zlib.crc32(kernel):08x}"
            f.write(line + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native-bin", help="the native build's bin folder (ch11-predict); required")
    parser.add_argument("--screenshot", help="write the page's screenshot here (PNG)")
    parser.add_argument("--data", default=os.environ.get("MNIST_DIR", os.path.join(ROOT, "data", "mnist")))
    parser.add_argument("--runs", metavar="DIR", help="link this run's folder in DIR while it runs (for --clean-up)")
    parser.add_argument("--clean-up", metavar="DIR", help="stop and remove what the runs linked in DIR left; fail if any")
    args = parser.parse_args()
    if args.clean_up:
        clean_up_after(args.clean_up)
        return
    if not args.native_bin:
        parser.error("--native-bin is required")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on_signal)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver (chromium-driver)", chromedriver),
                                       ("emcc (emscripten)", shutil.which("emcc"))) if not path]
    if missing:
        skip(f"{', '.join(missing)} not installed; bash scripts/setup.sh --playground installs them")
    predict = os.path.join(args.native_bin, "ch11-predict")
    if not os.access(predict, os.X_OK):
        skip(f"{predict} not built")

    weights = os.path.join(ROOT, "docs", "playground", "weights")
    work = os.path.abspath(tempfile.mkdtemp(prefix="playground-test-"))
    link = None
    driver = None
    passed = False
    try:
        if args.runs:
            os.makedirs(args.runs, exist_ok=True)
            link = os.path.join(args.runs, os.path.basename(work))
            os.symlink(work, link)
        site = os.path.join(work, "site")
        # The module is built already (the build's playground-wasm target, or ctest's
        # Playground.wasm-module); where it is not, this builds it: the first time, minutes.
        print("scripts/playground.sh --no-serve: the module (build-wasm) and the page", flush=True)
        build = subprocess.run(["bash", os.path.join(ROOT, "scripts", "playground.sh"), "--no-serve",
                                "--weights", weights, "--site", site], capture_output=True, text=True)
        if build.returncode != 0:
            fail(f"scripts/playground.sh failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}")
        wasm_bytes = os.path.getsize(os.path.join(site, "nn_playground.wasm"))
        make_bad_sites(site)

        # The native side: ch11-predict's probabilities for the whole test set, same weights.
        native_npy = os.path.join(work, "native.npy")
        run = subprocess.run([predict, "--load", weights, "--data", args.data, "--index", "0", "--threads", "1",
                              "--plots", os.path.join(work, "plots"), "--probabilities", native_npy],
                             capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"ch11-predict failed:\n{run.stdout}\n{run.stderr}")
        native, shape = read_npy_float32(native_npy)
        if shape != (10000, 10):
            fail(f"ch11-predict's probabilities have shape {shape}, not (10000, 10)")
        # The page's sample must be the test set's first images, or the comparison means nothing.
        with open(os.path.join(args.data, "t10k-images-idx3-ubyte"), "rb") as f:
            test_images = f.read(16 + 100 * 784)[16:]
        with open(os.path.join(ROOT, "docs", "playground", "samples", "t10k-first-100-images-idx3-ubyte"), "rb") as f:
            if f.read()[16:] != test_images:
                fail("docs/playground/samples is not the first 100 images of the test set")

        server, url = serve(site)
        driver = WebDriver()
        driver.start(chromedriver, chromium, work)
        try:
            print(f"chromium: {driver.call('GET', '/window/rect')} via {chromedriver}; page {url}", flush=True)

            # 3. Bad weights first: each gives a visible message and no drawing.
            for page, expected in (("?weights=no-such-folder", ["no-such-folder/manifest.txt", "404"]),
                                   ("?weights=wrong-shape", ["conv2d.kernel.npy", "shape", "(3, 3, 1, 16)"]),
                                   ("no-module/", ["nn_playground.wasm did not start"])):
                driver.go(url + page)
                if driver.wait_for_page() != "error":
                    fail(f"{page}: the page did not report an error")
                box = driver.element("#error")
                message = driver.text(box)
                if not driver.displayed(box) or not all(e in message for e in expected):
                    fail(f"{page}: the visible message is {message!r}, expected it to name {expected}")
                if not driver.js("return document.getElementById('draw').classList.contains('disabled') && "
                                 "document.getElementById('random').disabled;"):
                    fail(f"{page}: the error left drawing and the buttons enabled")
                print(f"ok: {page} shows: {message}", flush=True)

            driver.go(url)
            if driver.wait_for_page() != "ready":
                fail(f"the page did not load: {driver.js('return window.playground.error;')}")

            # 2. Three committed test images through the page, against ch11-predict.
            for i in range(3):
                page = driver.js("window.playground.showSample(arguments[0]); return window.playground.probabilities;", i)
                expected = native[10 * i:10 * i + 10]
                diff = max(abs(a - b) for a, b in zip(page, expected))
                shown = driver.text(driver.element("#prediction"))
                print(f"x_test[{i}]: page {[round(v, 6) for v in page]}, max |page - native| = {diff:.2e}, "
                      f"shows {shown}", flush=True)
                if len(page) != 10 or diff > TOLERANCE:
                    fail(f"x_test[{i}]: the page's probabilities differ from ch11-predict's by {diff:.3g} > {TOLERANCE}")
                if shown != str(max(range(10), key=lambda d: expected[d])):
                    fail(f"x_test[{i}]: the page shows {shown!r}, ch11-predict's argmax is another digit")

            # 1. Digits drawn with the mouse, and one with a finger.
            canvas = driver.element("#draw")
            drawings = [(d, "mouse") for d in DIGITS if d != DRAWN_LAST] + [(DRAWN_BY_TOUCH, "touch"), (DRAWN_LAST, "mouse")]
            for digit, pointer in drawings:
                driver.js("window.playground.clear();")
                if driver.js("return window.playground.predicted;") is not None:
                    fail("'clear' left a prediction on the page")
                driver.strokes(canvas, DIGITS[digit], pointer)
                time.sleep(0.2)  # the last animation frame's update
                shown = driver.text(driver.element("#prediction"))
                p = driver.js("return window.playground.probabilities;")
                print(f"drew {digit} ({pointer}): the page shows {shown!r} ({100 * max(p or [0]):.1f}%)", flush=True)
                if shown != str(digit):
                    fail(f"drew a {digit} ({pointer}), the page shows {shown!r}; probabilities {p}")

            ms = driver.js("return window.playground.timeForward(200, 7);")
            print(f"nn_playground.wasm: {wasm_bytes} bytes; one forward pass in Chromium: {1000 * ms:.0f} us "
                  "(median of 7 x 200 passes, performance.now())", flush=True)
            if args.screenshot:
                driver.js("window.scrollTo(0, 0);")
                driver.screenshot(args.screenshot)
                print(f"screenshot: {args.screenshot}", flush=True)
        finally:
            driver.close()
            server.shutdown()

        native_time = subprocess.run([predict, "--load", weights, "--data", args.data, "--index", "0",
                                      "--threads", "1", "--time-inference"], capture_output=True, text=True)
        warm = [line for line in native_time.stdout.splitlines() if "warm" in line]
        print(f"native (ch11-predict --time-inference --threads 1): {' | '.join(warm) or native_time.stdout}")
        passed = True
    finally:
        left = clean_up(work, driver)
        if left:
            print(f"FAIL: still there after the test: {left}", flush=True)
            sys.exit(1)
        if link:
            os.unlink(link)
        print(f"ok: no chromedriver or Chromium left running, {work} removed", flush=True)
    if passed:
        print("playground browser test: passed")


if __name__ == "__main__":
    main()
