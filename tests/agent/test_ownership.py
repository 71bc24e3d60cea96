"""Which dict is whose, and under which attribute name: recorded by the walker (format 2), so
that paths, holders and type tables read the same on every CPython version (run once per
version by ctest, through the real CLI)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import run_python  # noqa: E402

# One module holding one leak in each shape the diagnosis must name exactly.
LEAKY = '''
import dataclasses


class Payload(object): pass
class SlotLeak(object): pass
class DataLeak(object): pass
class MatLeak(object): pass
class RegLeak(object): pass
class CellLeak(object): pass
class MethodLeak(object): pass
class ClassLeak(object): pass


class Cache(object):
    pass


CACHE = Cache()
CACHE.store = {}  # An instance whose only attribute is a dict: not its __dict__.


def fill(n):
    for i in range(len(CACHE.store), len(CACHE.store) + n):
        CACHE.store["k%d" % i] = Payload()


fill(40)


class Slotted(object):
    __slots__ = ("items",)


SLOTTED = Slotted()
SLOTTED.items = [SlotLeak() for _ in range(3)]


@dataclasses.dataclass
class Config:
    entries: list


CONFIG = Config([DataLeak() for _ in range(3)])


class Materialized(object):
    pass


MAT = Materialized()
vars(MAT)  # The __dict__ exists now (3.11+ kept the attributes inline until asked).
MAT.things = [MatLeak()]

REGISTRY = {"a": RegLeak()}


def make():
    held = [CellLeak()]

    def inner():
        return held
    return inner


CLOSURE = make()


class Handler(object):
    def __init__(self):
        self.seen = [MethodLeak()]

    def on(self):
        pass


CALLBACK = Handler().on


class Klass(object):
    registry = [ClassLeak()]
'''

DUMP = '''
import json, sys, tidemark
import leaky
out = sys.argv[1]
tidemark.dump(out + "/a.tdmk", kind="graph", values=True)
tidemark.dump(out + "/off.tdmk", kind="graph", values=False)
leaky.fill(60)
tidemark.dump(out + "/b.tdmk", kind="graph", values=True)
summary = tidemark.snapshot()
rows = {}
for name in ("Cache", "Slotted", "Config", "Materialized", "Handler"):
    row = summary.type("leaky." + name)
    rows[name] = [row.count, row.bytes]
print(json.dumps(rows))
'''

# Leaked type -> the path `why` must print first, with values and without.
PATHS = {
    "leaky.Payload": (r"leaky\.CACHE\.store\['k\d+'\]", r"leaky\.CACHE\.store\[<key>\]"),
    "leaky.SlotLeak": (r"leaky\.SLOTTED\.items\[\d\]", None),
    "leaky.DataLeak": (r"leaky\.CONFIG\.entries\[\d\]", None),
    "leaky.MatLeak": (r"leaky\.MAT\.things\[0\]", None),
    "leaky.RegLeak": (r"leaky\.REGISTRY\['a'\]", r"leaky\.REGISTRY\[<key>\]"),
    "leaky.CellLeak": (r"leaky\.CLOSURE\.__closure__\[0\]\.cell_contents\[0\]", None),
    "leaky.MethodLeak": (r"leaky\.CALLBACK\.__self__\.seen\[0\]", None),
    "leaky.ClassLeak": (r"leaky\.Klass\.registry\[0\]", None),
}


def cli(*args):
    return subprocess.run([os.environ["TIDEMARK_CLI"]] + list(args), capture_output=True,
                          text=True, timeout=120)


class RecordedOwnership(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(cls.tmp.name, "leaky.py"), "w") as f:
            f.write(LEAKY)
        env = {"PYTHONPATH": cls.tmp.name + os.pathsep + os.environ.get("PYTHONPATH", "")}
        ran = run_python(DUMP, env=env, args=[cls.tmp.name])
        if ran.returncode != 0:
            raise AssertionError(ran.stderr)
        cls.rows = json.loads(ran.stdout.strip().splitlines()[-1])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def first_path(self, snapshot, type_name):
        why = cli("why", self.path(snapshot), type_name, "--json")
        self.assertEqual(why.returncode, 0, why.stderr)
        result = json.loads(why.stdout)
        self.assertNotIn("ownership_inferred", result)
        self.assertTrue(result["paths"], type_name)
        return result["paths"][0]["text"]

    def test_paths_name_attributes_keys_slots_closures_methods_and_class_attributes(self):
        for type_name, (with_values, _) in PATHS.items():
            with self.subTest(type=type_name):
                self.assertRegex(self.first_path("a.tdmk", type_name), "^" + with_values + "$")

    def test_without_values_attributes_keep_their_names_and_dict_keys_stay_redacted(self):
        for type_name, (with_values, without) in PATHS.items():
            with self.subTest(type=type_name):
                self.assertRegex(self.first_path("off.tdmk", type_name),
                                 "^" + (without or with_values) + "$")
        self.assertNotIn("k0", cli("why", self.path("off.tdmk"), "leaky.Payload").stdout)

    def test_types_charge_each_instance_its_own_bytes_as_the_agent_counts_them(self):
        types = cli("types", self.path("a.tdmk"), "--json", "--all")
        self.assertEqual(types.returncode, 0, types.stderr)
        rows = {r["type"]: r for r in json.loads(types.stdout)["rows"]}
        for name, (count, size) in self.rows.items():
            with self.subTest(type=name):
                row = rows["leaky." + name]
                self.assertEqual((row["count"], row["bytes"]), (count, size))

    def test_gdiff_names_the_dict_that_holds_the_new_objects(self):
        diff = cli("gdiff", self.path("a.tdmk"), self.path("b.tdmk"), "--json")
        self.assertEqual(diff.returncode, 0, diff.stderr)
        groups = {g["type"]: g for g in json.loads(diff.stdout)["groups"]}
        payload = groups["leaky.Payload"]
        self.assertEqual(payload["count"], 60)
        self.assertEqual(payload["holders"][0]["path"], "leaky.CACHE.store")

    def test_snapshots_record_ownership_and_attribute_names(self):
        import tidemark
        with open(self.path("a.tdmk"), "rb") as f:
            g = tidemark.load(f.read())
        names = {name for _, _, name in g["attributes"]} | set(g["attribute_keys"].values())
        self.assertTrue({"CACHE", "store", "items", "cell_contents", "__self__"} <= names)
        self.assertTrue(g["owners"])


if __name__ == "__main__":
    unittest.main()
