"""Command line: ``python -m pipeline.data.demo --out PATH [--workers N] [--seed S]``."""

import argparse
import logging
import sys

from pipeline.data.demo import _worker_main, demo_path, generate_demo


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # internal: one labelling worker of generate_demo
        sys.exit(_worker_main(argv[1:]))
    parser = argparse.ArgumentParser(description="Regenerate the GFN2-xTB demo dataset.")
    parser.add_argument("--out", default=str(demo_path()), help="output HDF5 path")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-molecules", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    generate_demo(
        args.out, n_workers=args.workers, seed=args.seed, max_molecules=args.max_molecules
    )


if __name__ == "__main__":
    main()
