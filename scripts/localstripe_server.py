"""Run localstripe (a local Stripe fake; GPL-3.0, a development/test dependency from requirements-dev.txt,
never shipped) as a separate process, bound to 127.0.0.1 and keeping its state in memory.

localstripe itself listens on every interface and pickles its state to /tmp/localstripe.pickle; this
wrapper turns both off, unless `--state FILE` asks for the state to be kept in FILE and read back at
start (the Stripe-outage tests stop and restart it: real Stripe keeps its data through an outage). Used by `make run` (through scripts/localstripe_dev.py) and by the tests
(tests/billing/stripe_fake.py).

    python scripts/localstripe_server.py --port 8420
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--state", help="keep the state in this file (read back at start)")
    args = parser.parse_args()

    from localstripe import resources, server

    if args.state:
        import os
        import pickle

        def dump(self, path=args.state):
            with open(path + ".tmp", "wb") as f:
                pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(path + ".tmp", path)

        def load(self, path=args.state):
            try:
                with open(path, "rb") as f:
                    dict.update(self, pickle.load(f))
            except FileNotFoundError:
                pass

        resources.Store.dump_to_disk, resources.Store.try_load_from_disk = dump, load
        resources.store.try_load_from_disk()
    else:
        resources.Store.dump_to_disk = lambda self: None  # state in memory only
        resources.Store.try_load_from_disk = lambda self: None
    from aiohttp import web

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
