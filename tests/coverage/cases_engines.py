"""The distributed engines notebook users drive from a kernel: a local pyspark SparkSession and
its DataFrames, and Ray's local mode (object refs, actors, remote functions). Their handles name
things that live in a JVM or a Ray cluster, so nbstate records them as not serializable and
rebuilds them by replaying the cells that made them; what they hold that is plain data (collected
Rows) is stored as usual."""

from __future__ import annotations

from covcase import Case

SPARK = "pyspark"
ISPARK = (
    "import os\n"
    "from pyspark.sql import Row, SparkSession\n"
    "spark = (SparkSession.builder.master('local[1]').appName('nbstate-coverage')\n"
    "         .config('spark.ui.enabled', 'false').config('spark.sql.shuffle.partitions', '1').getOrCreate())\n"
    "spark.sparkContext.setLogLevel('ERROR')"
)

RAY = "ray"
# The create cells start Ray themselves (ray_ready), so a replay in a fresh kernel does too.
IRAY = (
    "import ray\n"
    "def ray_ready():\n"
    "    if not ray.is_initialized():\n"
    "        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)\n"
    "@ray.remote\n"
    "def ray_square(x):\n"
    "    return x * x"
)

CASES = [
    Case(SPARK, "DataFrame in a dict (replay)", ISPARK, "ps_frames = {'a': spark.range(3)}",
         "ps_frames['b'] = spark.createDataFrame([(1, 'x'), (2, 'y')], ['k', 'v'])",
         eq="lambda a, b: sorted(a) == sorted(b) and all(a[k].collect() == b[k].collect() for k in a)"),
    Case(SPARK, "DataFrame derived with withColumn, in a list (replay)", ISPARK, "ps_list = [spark.range(4)]",
         "ps_list.append(ps_list[0].withColumn('sq', ps_list[0].id * ps_list[0].id))",
         eq="lambda a, b: len(a) == len(b) and all(x.collect() == y.collect() and x.columns == y.columns for x, y in zip(a, b))"),
    Case(SPARK, "Row objects collected into a list", ISPARK, "ps_rows = spark.range(3).collect()", "ps_rows.pop(0)\nps_rows.append(Row(id=9))"),
    Case(SPARK, "StructType schema: a field added in place", ISPARK + "\nfrom pyspark.sql.types import IntegerType, StringType, StructField, StructType",
         "ps_schema = StructType([StructField('a', IntegerType())])", "ps_schema.add('b', StringType(), nullable=False)",
         eq="lambda a, b: a.json() == b.json()"),
    Case(SPARK, "pandas DataFrame from toPandas, changed in place", ISPARK, "ps_pdf = spark.range(4).toPandas()", "ps_pdf['half'] = ps_pdf['id'] / 2\nps_pdf.rename(columns={'id': 'n'}, inplace=True)",
         eq="lambda a, b: a.equals(b)"),
    Case(RAY, "ObjectRef from ray.put in a list (replay)", IRAY, "ray_ready()\nray_refs = [ray.put([1, 2])]", "ray_refs.append(ray.put({'k': 3}))",
         eq="lambda a, b: [ray.get(x) for x in a] == [ray.get(x) for x in b]"),
    Case(RAY, "ObjectRef of a remote function's result in a dict (replay)", IRAY, "ray_ready()\nray_results = {'a': ray_square.remote(3)}",
         "ray_results['b'] = ray_square.remote(4)",
         eq="lambda a, b: sorted(a) == sorted(b) and all(ray.get(a[k]) == ray.get(b[k]) for k in a)"),
    Case(RAY, "actor handle: state changed by a method call (replay)", IRAY,
         "ray_ready()\n@ray.remote\nclass RayCounter:\n    def __init__(self):\n        self.n = 0\n    def inc(self):\n        self.n += 1\n        return self.n\n"
         "    def get(self):\n        return self.n\nray_counter = RayCounter.remote()",
         "ray.get(ray_counter.inc.remote())\nray.get(ray_counter.inc.remote())", names=("ray_counter",),
         eq="lambda a, b: ray.get(a.get.remote()) == ray.get(b.get.remote())"),
]
