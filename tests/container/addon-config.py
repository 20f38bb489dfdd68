#!/usr/bin/env python3
"""Checks the add-on's config.yaml and build.yaml the way the Supervisor
reads them, for tests/container/addon.sh.

The Supervisor skips an add-on whose config it cannot validate, logging a
warning nobody sees: the add-on is simply missing from the store. So the
forms the Supervisor's documentation allows are checked here: the required
keys, the architectures, the services, every schema element, and that each
option has a schema entry and a text in translations/en.yaml. Prints what is
wrong, exits 1 if anything is.

    tests/container/addon-config.py [DIR]     # DIR: the add-on (default .)
"""
import re
import sys
from pathlib import Path

import yaml

# A schema element: a type, with a range where the type has one, a device
# filter, a regex or a list of values, and "?" for optional.
ELEMENT = re.compile(
    r"(bool|email|url|port"
    r"|device(\(subsystem=[a-z]+\))?"
    r"|(str|password)(\(\d*,\d*\))?"
    r"|int(\(-?\d*,-?\d*\))?"
    r"|float(\(-?[\d.]*,-?[\d.]*\))?"
    r"|match\(.*\)"
    r"|list\([^|()]+(\|[^|()]+)*\))\??"
)
ARCHES = {"amd64", "aarch64", "armv7", "armhf", "i386"}
SERVICE = re.compile(r"(mqtt|mysql):(provide|want|need)")


def schema_problems(schema):
    for key, element in schema.items():
        if isinstance(element, list):
            element = element[0] if len(element) == 1 else None
        if not isinstance(element, str) or not ELEMENT.fullmatch(element):
            yield f"schema.{key}: {element!r} is not a schema element"


def problems(addon):
    config = yaml.safe_load((addon / "config.yaml").read_text())
    build = yaml.safe_load((addon / "build.yaml").read_text())
    for key in ("name", "version", "slug", "description", "arch"):
        if not config.get(key):
            yield f"config.yaml: no {key}"
    if not isinstance(config.get("version"), str):
        yield "config.yaml: version must be a string"
    if not re.fullmatch(r"[-_.A-Za-z0-9]+", str(config.get("slug"))):
        yield f"config.yaml: slug {config.get('slug')!r}"
    yield from (f"config.yaml: arch {a!r}" for a in config["arch"] if a not in ARCHES)
    yield from (f"config.yaml: service {s!r}" for s in config.get("services", [])
                if not SERVICE.fullmatch(s))
    schema, options = config.get("schema", {}), config.get("options", {})
    yield from schema_problems(schema)
    yield from (f"options.{k}: not in schema" for k in options if k not in schema)
    yield from (f"build.yaml: no base image for {a}" for a in config["arch"]
                if a not in build.get("build_from", {}))
    # Names and help texts for the options' form: one per option.
    texts = yaml.safe_load((addon / "translations" / "en.yaml").read_text())["configuration"]
    yield from (f"translations/en.yaml: no {k}" for k in schema if k not in texts)
    yield from (f"translations/en.yaml: {k} is no option" for k in texts if k not in schema)


def main():
    found = list(problems(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
