"""Writes a tidemark graph snapshot as a meliae dump (one JSON object per line), so that
`tidemark import-meliae` can be timed on a dump of the benchmark heap.

    PYTHONPATH=build/python/py313 python3.13 bench/analysis/to_meliae_dump.py SNAPSHOT OUT.json

Types are written without their module, as meliae writes tp_name.
"""
import json
import sys

import tidemark


def main():
    source, out = sys.argv[1], sys.argv[2]
    with open(source, "rb") as f:
        g = tidemark.load(f.read())
    types = [name.rsplit(".", 1)[-1] for name, _, _, _ in g["types"]]
    names = dict(g["names"])
    values = dict(g["values"])
    address, type_, size, length, refs = g["address"], g["type"], g["size"], g["length"], g["refs"]
    with open(out, "w") as f:
        f.write("[\n")
        for i in range(len(address)):
            line = {"address": address[i], "type": types[type_[i]], "size": size[i]}
            if i in names:
                line["name"] = names[i]
            if length[i]:
                line["len"] = length[i]
            if i in values:
                line["value"] = values[i]
            line["refs"] = [address[r] for r in refs[i]]
            f.write(json.dumps(line, separators=(", ", ": ")) + ",\n")
        f.write("]\n")


if __name__ == "__main__":
    main()
