"""cmfq's views in Apache Spark: ``cmfq.spark.register(spark, warehouse_or_url)``.

Needs the ``spark`` extra (``pip install 'cmfq[spark]'``) and Java 17 or later. See
:mod:`cmfq.warehouse.spark` and the README section "Running on Spark".
"""

from cmfq.warehouse.spark import FUNCTIONS, VIEWS, ancestors, descendants, location, register, session

__all__ = ["FUNCTIONS", "VIEWS", "ancestors", "descendants", "location", "register", "session"]
