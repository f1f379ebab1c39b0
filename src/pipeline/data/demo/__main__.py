"""Command line: ``python -m pipeline.data.demo --out PATH [--workers N] [--seed S]``."""

import argparse
import logging

from pipeline.data.demo import demo_path, generate_demo


def main(argv: list[str] | None = None) -> None:
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
