"""Command line: ``factvae-sk demo`` (the bundled data) and ``factvae-sk fit`` (your data).

Both run the same job (:func:`factvae_sk.app._job.run_job`) and write the same outputs::

    factvae-sk demo --out factvae_demo [--epochs 60]
    factvae-sk fit --rna rna.npz --atac atac.mtx --genes genes.tsv --peaks peaks.tsv \\
        [--cells cells.tsv --labels cell_type --batch donor] [--gtf genes.gtf.gz] \\
        [--genome hg38.fa --motifs JASPAR2024.txt] --out results
    factvae-sk fit --rna-h5ad rna.h5ad --atac-h5ad atac.h5ad [--gtf ...] --out results
    factvae-sk fit --mudata multiome.h5mu [--layer counts] [--gtf ...] --out results
    factvae-sk fit --10x filtered_feature_bc_matrix.h5 [--gtf genes.gtf.gz] \\
        [--cells annotation.csv --labels cell_type --batch sample] --out results

Exit status: 0 on success, 2 on a usage error or a problem with an input file (one line on
stderr naming the file and the problem), 1 on an unexpected failure, 130 on Ctrl-C, 143 on
SIGTERM.
``--debug`` adds the traceback. Python callers get the job's result from :func:`run`.
"""

import argparse
import os
import signal
import sys
import threading
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

from .app._cell_map import MAX_TSNE_CELLS, METHODS
from .app._job import MOTIF_OUTPUTS, OUTPUTS, run_job
from .app._peak_filter import MIN_PEAK_CELLS
from .data._coordinates import check_prior_links
from .data._io import read_paired_files, read_paired_h5ad, read_paired_h5mu
from .datasets import load_snare_cellline, read_10x_multiome
from .exceptions import FactVAEWarning, InputFileError
from .hvg import highly_variable_genes
from .motifs import read_motifs
from .prior import MODES, _check_tables, _prior_matrix

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "run"]

EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected failure (a bug, a full disk, ...)
EXIT_USAGE = 2  # a usage error or a problem with the user's files, as argparse uses 2
EXIT_INTERRUPTED = 130  # the shells' convention for SIGINT


def _count(minimum):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _common(parser, default_out=None):
    parser.add_argument(
        "--out",
        default=default_out,
        required=default_out is None,
        help="output folder (created)" + (f"; default {default_out}" if default_out else ""),
    )
    parser.add_argument(
        "--epochs",
        type=_count(1),
        default=None,
        help="training epochs (default: enough for 3700 gradient steps, at most the method's "
        "300: 300 up to 1578 cells, fewer above; e.g. 60 for a quick look)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    parser.add_argument(
        "--prior-mode",
        choices=MODES,
        default="body_upstream",
        help="gene-peak links: gene body + upstream promoter (default) or TSS window with "
        "distance decay",
    )
    parser.add_argument(
        "--no-prior",
        action="store_true",
        help="fit without a gene-peak prior (no coordinates needed; links are then not "
        "learned from a prior and top_links.csv is empty)",
    )
    parser.add_argument(
        "--upstream", type=_count(0), default=2000, help="promoter length in bp (default 2000)"
    )
    parser.add_argument(
        "--min-peak-cells",
        type=_count(0),
        default=MIN_PEAK_CELLS,
        help="drop peaks detected in fewer cells: they carry no information (default "
        f"{MIN_PEAK_CELLS}; 0 keeps every peak)",
    )
    parser.add_argument(
        "--window", type=_count(0), default=150_000, help="TSS window in bp (default 150000)"
    )
    parser.add_argument(
        "--n-clusters",
        type=_count(2),
        default=None,
        help="KMeans clusters (default: the number of labels, else 8)",
    )
    parser.add_argument(
        "--n-links", type=_count(0), default=1000, help="rows of top_links.csv (default 1000)"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback too (for bug reports)",
    )
    parser.add_argument(
        "--map",
        choices=METHODS,
        default="auto",
        help="2-D map of cell_map.png: UMAP (umap-learn) or openTSNE when installed, else "
        "scikit-learn's t-SNE (default auto)",
    )
    parser.add_argument(
        "--map-max-cells",
        type=int,
        default=MAX_TSNE_CELLS,
        help="scikit-learn's t-SNE maps a stratified subsample of this many cells when there "
        f"are more (default {MAX_TSNE_CELLS})",
    )
    parser.add_argument(
        "--plot-genes",
        nargs="+",
        default=None,
        metavar="GENE",
        help="genes drawn in links.png (default: the 4 most variable genes)",
    )


def build_parser():
    """The ``factvae-sk`` argument parser, with its ``demo`` and ``fit`` commands.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> from factvae_sk.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--epochs", "5"])
    >>> args.command, args.epochs
    ('demo', 5)
    """
    every = {**OUTPUTS, **MOTIF_OUTPUTS}
    outputs = "\n".join(f"  {name:<23} {what}" for name, what in every.items())
    parser = argparse.ArgumentParser(
        prog="factvae-sk",
        description="FactVAE on paired single-cell RNA + ATAC counts.",
        epilog=f"outputs (in --out):\n{outputs}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="the bundled SNARE-seq cell-line mixture (1047 cells, 4 cell lines)",
        description="Fit FactVAE on the bundled SNARE-seq cell-line mixture (Chen et al. "
        "2019, GSE126074) with its 2000 highly variable genes, and score the clustering "
        "against the known cell lines.",
    )
    _common(demo, default_out="factvae_demo")

    fit = commands.add_parser(
        "fit",
        help="your own paired counts",
        description="Fit FactVAE on your paired counts. Matrices are cells x features "
        "(scipy .npz or Matrix Market .mtx[.gz]); a features x cells matrix (10x's "
        "matrix.mtx) is transposed automatically when its shape says so. Tables are TSV "
        "(or .csv) with a header row.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="tables:\n"
        "  --genes  a 'gene' column (else the first) and chrom, start, end, strand\n"
        "           (0-based half-open), or just names with --gtf\n"
        "  --peaks  chrom, start, end columns, or 'chrom:start-end' names ('peak' or the\n"
        "           first column; chrom-start-end and chrom_start_end work too), or a\n"
        "           BED file without a header row (peaks.bed)\n"
        "  --cells  a 'barcode' column (else the first) and annotations (see --labels);\n"
        "           with --10x it is joined by barcode, and only the cells it lists are kept\n"
        "chromosomes named 1 or chr1, MT or chrM (Ensembl or UCSC) are matched between the\n"
        "gene table, the GTF and the peaks, with a warning; repeated gene or peak names are\n"
        "made unique (A, A-1); tables that link no gene to a peak stop with an error",
    )
    files = fit.add_argument_group("counts as files")
    files.add_argument("--rna", help="RNA counts, .npz or .mtx[.gz]")
    files.add_argument("--atac", help="ATAC counts, .npz or .mtx[.gz]")
    files.add_argument("--genes", help="gene table (rows = RNA features)")
    files.add_argument("--peaks", help="peak table (rows = ATAC features)")
    files.add_argument("--cells", "--barcodes", dest="cells", help="cell table (optional)")
    files.add_argument(
        "--transpose",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or, with --no-transpose, forbid) reading the matrices as features x cells",
    )
    tenx = fit.add_argument_group("counts from Cell Ranger ARC (10x Multiome)")
    tenx.add_argument(
        "--10x",
        dest="tenx",
        metavar="PATH",
        help="filtered_feature_bc_matrix.h5 (needs h5py: the 'tenx' extra) or the "
        "filtered_feature_bc_matrix/ folder; genes and peaks split by feature type, gene "
        "strands (and coordinates the file lacks) from --gtf, annotations from --cells",
    )
    h5ad = fit.add_argument_group("counts as AnnData (needs anndata)")
    h5ad.add_argument("--rna-h5ad", help="RNA AnnData, cells x genes")
    h5ad.add_argument("--atac-h5ad", help="ATAC AnnData, cells x peaks")
    h5ad.add_argument("--layer", default=None, help="layer holding raw counts (default X)")
    h5ad.add_argument("--mudata", help="MuData (.h5mu, needs mudata) with both modalities")
    h5ad.add_argument("--rna-mod", default="rna", help="RNA modality of --mudata (default rna)")
    h5ad.add_argument("--atac-mod", default="atac", help="ATAC modality of --mudata (default atac)")
    fit.add_argument("--gtf", default=None, help="GTF(.gz) to look up gene coordinates by name")
    fit.add_argument("--labels", default=None, help="cell table column with known labels")
    fit.add_argument(
        "--batch",
        default=None,
        metavar="COLUMN",
        help="cell table (or .obs) column with each cell's sample (donor, run, ...): the "
        "samples are integrated (FactVAE's batch=)",
    )
    motif = fit.add_argument_group("motif activity (needs pyfaidx: the 'motifs' extra)")
    motif.add_argument("--genome", default=None, help="genome FASTA the peaks lie on")
    motif.add_argument("--motifs", default=None, help="motif file: JASPAR, MEME or TRANSFAC")
    fit.add_argument(
        "--n-top-genes",
        type=_count(0),
        default=2000,
        help="highly variable genes to model (default 2000; 0 = all genes)",
    )
    _common(fit)
    return parser


def _load_user_data(args, parser):
    prior = not args.no_prior
    if args.tenx:
        others = ["rna", "atac", "genes", "peaks", "rna_h5ad", "atac_h5ad", "mudata"]
        given = [f"--{name.replace('_', '-')}" for name in others if getattr(args, name)]
        if given:
            parser.error(f"--10x holds the counts, features and barcodes: drop {', '.join(given)}")
        for option in ("labels", "batch"):
            if getattr(args, option) is not None and args.cells is None:
                parser.error(
                    f"--{option} names a column of a cell table: give --cells, a table whose "
                    "'barcode' column holds the 10x barcodes"
                )
        data = read_10x_multiome(args.tenx, gtf=args.gtf if prior else None, cells=args.cells)
        if prior and args.gtf is None and data.located:
            _warn(
                f"{args.tenx} gives the genes no strand: the prior extends each gene on both "
                "sides; pass --gtf (e.g. the Cell Ranger ARC reference's genes/genes.gtf.gz) "
                "for promoters upstream of the TSS only"
            )
        return data
    if args.mudata:
        if args.rna_h5ad or args.atac_h5ad or args.rna or args.atac:
            parser.error("--mudata holds both modalities: give no other counts")
        return read_paired_h5mu(
            args.mudata, args.rna_mod, args.atac_mod, layer=args.layer, gtf=args.gtf, prior=prior
        )
    if args.rna_h5ad or args.atac_h5ad:
        if not (args.rna_h5ad and args.atac_h5ad):
            parser.error("--rna-h5ad and --atac-h5ad go together")
        return read_paired_h5ad(
            args.rna_h5ad, args.atac_h5ad, layer=args.layer, gtf=args.gtf, prior=prior
        )
    missing = [f"--{name}" for name in ("rna", "atac", "genes", "peaks") if not getattr(args, name)]
    if missing:
        parser.error(
            f"missing {', '.join(missing)} (or give --10x, --rna-h5ad and --atac-h5ad, or --mudata)"
        )
    for option in ("labels", "batch"):
        if getattr(args, option) is not None and args.cells is None:
            parser.error(f"--{option} names a column of the cell table: give --cells too")
    return read_paired_files(
        args.rna,
        args.atac,
        args.genes,
        args.peaks,
        cells=args.cells,
        gtf=args.gtf,
        transpose=args.transpose,
        prior=prior,
    )


def _check_out(out):
    """The output folder must be usable before a long fit, not after it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "--out must be a folder, and this is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputFileError(out, f"cannot create the --out folder ({error.strerror})") from error
    if not os.access(out, os.W_OK):
        raise InputFileError(out, "the --out folder is not writable")


def _warn(message):
    print(f"factvae-sk: warning: {message}", file=sys.stderr)


def _run(args, parser):
    use_prior = not args.no_prior
    if args.command == "demo":
        data = load_snare_cellline()
        # The bundled selection: scanpy's seurat_v3 recipe, 2000 genes.
        hvg = data.genes["highly_variable"].to_numpy()
        label_column = "cell_line"
    else:
        _check_motif_files(args, parser)
        data = _load_user_data(args, parser)
        if use_prior and not data.located:
            genes = args.genes or args.rna_h5ad or args.mudata or args.tenx
            _warn(
                f"the genes of {genes} have no coordinates (chrom, start, "
                "end, strand) and no --gtf was given: running without a gene-peak prior. "
                "Gene-peak links are then not learned from a prior, and top_links.csv is empty."
            )
            use_prior = False
        for option in ("labels", "batch"):
            column = getattr(args, option)
            if column is not None and column not in data.cells.columns:
                where = args.cells or args.rna_h5ad or args.mudata or args.tenx or "the cell table"
                raise InputFileError(
                    where,
                    f"--{option} {column!r} is not a column of the cell table; it has "
                    f"{list(data.cells.columns)}",
                )
        n_top = args.n_top_genes or data.rna.shape[1]
        hvg = highly_variable_genes(data.rna, n_top)
        label_column = args.labels
        if use_prior:
            _check_prior(data, hvg, args)
    _check_out(args.out)
    return run_job(
        data,
        hvg=hvg,
        out=args.out,
        label_column=label_column,
        batch_column=getattr(args, "batch", None),
        n_clusters=args.n_clusters,
        max_epochs=args.epochs,
        random_state=args.seed,
        prior_mode=args.prior_mode if use_prior else None,
        upstream=args.upstream,
        window=args.window,
        min_peak_cells=args.min_peak_cells,
        n_links=args.n_links,
        map_method=args.map,
        map_max_cells=args.map_max_cells,
        plot_genes=args.plot_genes,
        genome=getattr(args, "genome", None),
        motifs=getattr(args, "motifs", None),
    )


def _check_prior(data, hvg, args):
    """The job's prior, built before the long fit: a prior that would link nothing stops the
    run with an error naming the tables (their other problems were said when read)."""
    genes = data.genes[hvg].reset_index(drop=True)
    sources = (args.genes or args.rna_h5ad or args.mudata, args.peaks or args.atac_h5ad)
    sources = tuple(source or args.mudata or args.tenx for source in sources)
    names = [Path(str(source)).name for source in sources]
    what = (f"the {len(genes)} selected genes of {names[0]}", f"the peak table {names[1]}")
    try:
        genes, peaks = _check_tables(genes, data.peaks, what=what, checked=True)
        prior = _prior_matrix(
            genes, peaks, mode=args.prior_mode, upstream=args.upstream, window=args.window
        )
        check_prior_links(prior, genes, what)
    except ValueError as error:
        raise InputFileError(sources[0], _one_line(error)) from error


@contextmanager
def _warnings_as_lines(prog):
    """FactVAE's warnings about the user's data as ``factvae-sk: warning: ...`` lines on
    stderr (where users look), not Python's file:line form."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def line(message, category, *args, **kwargs):
            if issubclass(category, FactVAEWarning):
                print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = line
        yield


def _check_motif_files(args, parser):
    """--genome and --motifs go together, and must be readable before the long fit."""
    if (args.genome is None) != (args.motifs is None):
        parser.error("--genome and --motifs go together")
    if args.genome is None:
        return
    for path in (args.genome, args.motifs):
        if not Path(path).is_file():
            raise InputFileError(path, "no such file")
    try:
        read_motifs(args.motifs)
    except ValueError as error:
        raise InputFileError(args.motifs, str(error)) from error
    try:
        import pyfaidx  # noqa: F401
    except ImportError:
        raise InputFileError(
            args.genome, "reading a FASTA needs pyfaidx: pip install 'factvae_sk[motifs]'"
        ) from None


def run(argv=None):
    """Run ``factvae-sk`` from Python and return the job's result.

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    result : Bunch
        ``model`` (the fitted FactVAE), ``scores`` (ARI/NMI table), ``out`` (the output
        folder) and ``summary`` (what ``summary.json`` holds).

    Raises
    ------
    InputFileError
        A problem with one of the user's files (a ``ValueError``).
    SystemExit
        A usage error (status 2), after argparse has printed it; also for ``--help``.

    Examples
    --------
    >>> from factvae_sk.cli import run
    >>> result = run(["demo", "--epochs", "1", "--out", "demo"])  # doctest: +SKIP
    >>> result.summary["n_cells"]  # doctest: +SKIP
    1047
    """
    parser = build_parser()
    return _run(parser.parse_args(argv), parser)


def _one_line(text):
    return " ".join(str(text).split())


class _Terminated(SystemExit):
    """SIGTERM, raised where the program was, so that ``finally`` blocks run."""


@contextmanager
def _sigterm_as_exit():
    """SIGTERM (a scheduler cancelling the job, ``kill``) unwinds like Ctrl-C, so temporary
    files are removed and no output is left half-written; by default it would end the
    process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def stop(signum, frame):
        raise _Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    """The ``factvae-sk`` console script: run the command line, return the exit status.

    0 on success; 2 on a usage error or a problem with an input file, with one line on
    stderr naming the file; 1 on an unexpected failure; 130 on Ctrl-C, 143 on SIGTERM
    (outputs are written atomically: existing files stay as they were). ``--debug`` also
    prints the traceback. Use :func:`run` to get the job's result in Python.

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status (``sys.exit(main())``).

    Examples
    --------
    A command line that lacks a file fails with a message on stderr and status 2:

    >>> from factvae_sk.cli import main
    >>> main(["fit", "--rna", "rna.npz", "--atac", "atac.npz", "--out", "results"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        with _sigterm_as_exit(), _warnings_as_lines(parser.prog):
            _run(args, parser)
    except _Terminated as stop:
        print(f"{parser.prog}: terminated (SIGTERM); no output was changed", file=sys.stderr)
        return stop.code
    except SystemExit as stop:  # parser.error() for a usage error found after parsing
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except InputFileError as error:
        failure, status, message = error, EXIT_USAGE, f"error: {_one_line(error)}"
    except KeyboardInterrupt as error:
        failure, status, message = error, EXIT_INTERRUPTED, "interrupted"
    except Exception as error:
        failure, status = error, EXIT_ERROR
        message = f"unexpected error: {type(error).__name__}: {_one_line(error)}"
        if not args.debug:
            message += " (run again with --debug for the traceback)"
    else:
        return EXIT_OK
    if args.debug:
        traceback.print_exception(failure)
    print(f"{parser.prog}: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
