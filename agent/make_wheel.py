"""Packs the agent built for this interpreter into a wheel (PEP 427), with no setuptools.

    python3.X agent/make_wheel.py --package BUILD/python/py3X/tidemark --version 0.1.0 \
        --out BUILD/dist

Run by the interpreter the module was built for (agent/CMakeLists.txt does): the tags are its
own, tidemark-<version>-cp3X-cp3X-<platform>.whl. The wheel holds the package as built (the
Python sources and the one _native module; no __pycache__: pip compiles on install) and a
.dist-info with METADATA, WHEEL, top_level.txt and RECORD (every file's sha256 and size).
Writes the wheel with fixed timestamps, so the same build gives the same bytes, and prints
its path.
"""

import argparse
import base64
import hashlib
import os
import sys
import sysconfig
import zipfile

SUMMARY = "Continuous heap snapshots and leak detection for long-running Python services"
EPOCH = (2020, 1, 1, 0, 0, 0)  # Zip entries' timestamp: no earlier than 1980, fixed.


def tags():
    python = "cp%d%d" % sys.version_info[:2]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return python, python, platform


def package_files(package):
    """(path inside the wheel, path on disk) of every file of the package, sorted."""
    files = []
    for root, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in names:
            if name.endswith((".py", ".so")):
                path = os.path.join(root, name)
                inside = os.path.relpath(path, os.path.dirname(package))
                files.append((inside.replace(os.sep, "/"), path))
    return sorted(files)


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "%s,sha256=%s,%d" % (name, digest.decode("ascii"), len(data))


def dist_info(version, wheel_tag):
    major, minor = sys.version_info[:2]
    metadata = "\n".join([
        "Metadata-Version: 2.1",
        "Name: tidemark",
        "Version: %s" % version,
        "Summary: %s" % SUMMARY,
        "Requires-Python: ==%d.%d.*" % (major, minor),
        "Classifier: Programming Language :: Python :: Implementation :: CPython",
        "Classifier: Operating System :: POSIX :: Linux",
        "",
    ])
    wheel = "\n".join([
        "Wheel-Version: 1.0",
        "Generator: tidemark agent/make_wheel.py",
        "Root-Is-Purelib: false",
        "Tag: %s" % wheel_tag,
        "",
    ])
    return [("METADATA", metadata), ("WHEEL", wheel), ("top_level.txt", "tidemark\n")]


def write(zf, name, data):
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
    zf.writestr(info, data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True, help="the built tidemark package directory")
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", required=True, help="directory to write the wheel into")
    args = parser.parse_args()
    files = package_files(args.package)
    if not any(name.endswith(".so") for name, _ in files):
        sys.exit("make_wheel: no _native module in %s: build the agent first" % args.package)
    wheel_tag = "-".join(tags())
    info_dir = "tidemark-%s.dist-info" % args.version
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "tidemark-%s-%s.whl" % (args.version, wheel_tag))
    record = []
    with zipfile.ZipFile(path + ".part", "w") as zf:
        for name, source in files:
            with open(source, "rb") as f:
                data = f.read()
            write(zf, name, data)
            record.append(record_line(name, data))
        for name, text in dist_info(args.version, wheel_tag):
            data = text.encode("utf-8")
            write(zf, "%s/%s" % (info_dir, name), data)
            record.append(record_line("%s/%s" % (info_dir, name), data))
        record.append("%s/RECORD,," % info_dir)
        write(zf, "%s/RECORD" % info_dir, ("\n".join(record) + "\n").encode("utf-8"))
    os.replace(path + ".part", path)
    print(path)


if __name__ == "__main__":
    main()
