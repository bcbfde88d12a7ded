"""Stage 5: print the executions of every stage, as CMF's notebooks do."""

import click
import pandas as pd
from cmflib.cmfquery import CmfQuery
from tabulate import tabulate


def query(mlmd_path: str) -> None:
    cmf_query = CmfQuery(mlmd_path)
    stages = cmf_query.get_pipeline_stages("Test-env")
    print(stages)
    for stage in stages:
        df: pd.DataFrame = cmf_query.get_all_executions_in_stage(stage)
        df.drop(columns=["Git_Start_Commit", "Git_End_Commit"], inplace=True, axis=1)
        print(tabulate(df, headers="keys", tablefmt="psql"))


@click.command()
@click.argument("mlmd_path")
def main(mlmd_path: str) -> None:
    query(mlmd_path)


if __name__ == "__main__":
    main()
