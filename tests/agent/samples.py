"""Builtin objects of every kind the agent sizes natively, for the size tests."""

import array
import collections
import sys
import types


def _gen():
    yield 1


def builtin_samples():
    async def coro_fn():
        return 1

    coro = coro_fn()
    samples = {
        "int 0": 0 + 0, "int small": 7, "int big": 2 ** 100 + 1, "int negative": -(2 ** 70),
        "bool": True, "float": 1.25, "complex": 1 + 2j,
        "str ascii": "ascii-" + str(id(object())), "str latin1": "caf\xe9" * 3,
        "str ucs2": "\u20ac" * 5, "str ucs4": "\U0001F600" * 3, "str empty": "",
        "bytes": b"bytes" * 3, "bytearray": bytearray(b"abc" * 10),
        "tuple": (1, 2, "x"), "tuple empty": (), "list empty": [], "list": [1, 2, 3],
        "list grown": list(range(100)), "dict empty": {}, "dict": {"a": 1, "b": 2},
        "dict int keys": {i: i for i in range(50)}, "set": {1, 2, 3}, "set big": set(range(100)),
        "frozenset": frozenset({1, 2}), "range": range(5), "slice": slice(1, 2),
        "function": _gen, "generator": _gen(), "coroutine": coro, "code": _gen.__code__,
        "type": type("Dyn", (), {}), "module": sys, "method": "".join,
        "bound method": [].append, "property": property(lambda self: 1),
        "deque": collections.deque([1, 2, 3]), "ordered dict": collections.OrderedDict(a=1),
        "defaultdict": collections.defaultdict(list, a=[1]), "counter": collections.Counter("aab"),
        "array": array.array("i", range(10)), "memoryview": memoryview(b"abcdef"),
        "cell": (lambda: coro).__closure__[0], "mappingproxy": types.MappingProxyType({}),
        "none": None, "ellipsis": Ellipsis, "static type": int, "frame": sys._getframe(),
    }
    return samples, coro
