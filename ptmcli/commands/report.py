"""ptm report: the HTML report of a classify results file."""

from __future__ import annotations

from typing import Annotated

import typer

from ptmcli.errors import EXIT_OK


def report(
    results: Annotated[str, typer.Argument(help="A results file of `ptm classify --output` or `ptm merge` (.h5, .jsonl, .csv, .tsv).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The report (.html); replaced if it exists. Thumbnails inline, or in NAME_files/ beside it above 1000.", show_default=False)],
) -> None:
    """Render the HTML report of a results file: for a finished or merged batch job, or one still running.

    The same page as `ptm classify --report`; thumbnails are made from the input paths recorded in the file (relative paths from the folder the job ran in). HDF5 files record how the results were made; text files do not.

    Examples:

      ptm report results.h5 -o report.html

      ptm merge shard-*.h5 -o all.h5 && ptm report all.h5 -o all.html
    """
    from pathlib import Path

    from ptmcli.sinks.report import check_report, report_of_results

    report_of_results(Path(results), check_report(output))
    raise typer.Exit(EXIT_OK)
