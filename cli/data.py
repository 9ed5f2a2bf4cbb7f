"""``fewmul data SET``: check a data set, or fetch it once with ``--download``."""

from pathlib import Path

from fewmul.nn.config import DATA_SETS


def register(sub) -> None:
    d = sub.add_parser(
        "data", help="check a data set, or download mnist, cifar10 or svhn into the cache",
        description="Load SET, check its files and print where it comes from and its splits. "
                    "digits ships inside fewmul. fashion-mnist comes from the Debian package "
                    "dataset-fashion-mnist ('make data'). mnist (four IDX files), cifar10 "
                    "(cifar-10-python.tar.gz, or its extracted cifar-10-batches-py folder) "
                    "and svhn (train_32x32.mat and test_32x32.mat) are read from --dir, "
                    "by default the folder SET of the cache ($FEWMUL_CACHE, else "
                    "$XDG_CACHE_HOME/fewmul, else ~/.cache/fewmul); 'fewmul data SET "
                    "--download' fetches them there once. Downloaded files are kept only "
                    "when their published MD5 checksums match, and are checked again each "
                    "time this command runs.",
        epilog="Validation images are the last training images: 10000 for the MNIST sets, "
               "5000 for cifar10, 6000 for svhn.")
    d.add_argument("set", choices=DATA_SETS, metavar="SET", help="data set: " + ", ".join(DATA_SETS))
    d.add_argument("--dir", type=Path, default=None,
                   help="directory of the files (default: the Debian package's for "
                        "fashion-mnist, the cache for the others)")
    d.add_argument("--download", action="store_true",
                   help="mnist, cifar10, svhn: fetch the files (unless already there with "
                        "the right checksum) and verify them")
    d.add_argument("--url", action="append", default=None, metavar="URL",
                   help="--download: base URL to fetch from, the file name is appended "
                        "(repeatable; default: the published locations)")
    d.set_defaults(func=run)


def run(args) -> int:
    from fewmul.nn.config import DataConfig
    from fewmul.nn.data import DOWNLOADS, data_dir, download, load_dataset, verify_checksums
    cfg = DataConfig(set=args.set, input_bits=4 if args.set == "digits" else 8,
                     dir=None if args.dir is None else str(args.dir))
    if args.download:
        if args.set not in DOWNLOADS:
            raise ValueError(f"--download is for {', '.join(DOWNLOADS)}; {args.set} " + (
                "ships inside the package" if args.set == "digits" else
                "comes from the Debian package dataset-fashion-mnist: run 'make data'"))
        download(args.set, data_dir(cfg), urls=args.url)
    if args.set in DOWNLOADS:
        # the downloaded files, when there, are checked (the first one marks a download)
        checksums = DOWNLOADS[args.set].md5
        if (data_dir(cfg) / next(iter(checksums))).is_file():
            problems = verify_checksums(data_dir(cfg), checksums)
            if problems:
                raise ValueError(f"{args.set} checksums do not match: " + "; ".join(problems)
                                 + f"; 'fewmul data {args.set} --download' fetches them again")
            print(f"{data_dir(cfg)}: MD5 checksums OK")
    data = load_dataset(cfg)
    where = "bundled with fewmul" if args.set == "digits" else str(data_dir(cfg))
    c, h, w = data.shape
    image = f"{data.inputs} pixels" if c == 1 else f"{h}x{w} pixels x {c} channels"
    print(f"{args.set} ({where}): {image}, {data.classes} classes; "
          f"train {len(data.train)}, validation {len(data.val)}, test {len(data.test)}")
    return 0
