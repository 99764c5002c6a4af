"""Writing reporting's counter tables: statements built once per dialect and executed with
parameter lists (on PostgreSQL one round trip for all the writes of a batch), and the roll-ups
recomputed from the daily cube (after a bulk load, and by the migration that introduced them)."""

import json
from functools import cache

from sqlalchemy import text

from services.reporting.db import (
    KEY_COLUMNS,
    ROLLUP_KEYS,
    complaints,
    daily_stats,
    duration_stats,
    rollup_days,
    rollup_durations,
    rollup_months,
)
from services.reporting.domain.aggregates import (
    COUNTER_COLUMNS,
    DIMENSIONS,
    FILTER_SETS,
    UNIT_SLA_COLUMNS,
)

_DURATION_KEY = (*KEY_COLUMNS, "measure", "working_days")
TABLES = (
    # (table, key columns, value columns), in the order a transaction locks them.
    (daily_stats, KEY_COLUMNS, COUNTER_COLUMNS),
    (duration_stats, _DURATION_KEY, ("n",)),
    (rollup_days, ROLLUP_KEYS["rollup_days"], COUNTER_COLUMNS),
    (rollup_months, ROLLUP_KEYS["rollup_months"], UNIT_SLA_COLUMNS),
    (rollup_durations, ROLLUP_KEYS["rollup_durations"], ("n",)),
)
_UPSERTS: dict = {}


def dialect_insert(dialect: str, table):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def upsert(dialect: str, table, keys, values):
    """INSERT ... ON CONFLICT (key) DO UPDATE SET v = v + excluded.v, built once."""
    cache_key = (dialect, table.name)
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        ins = dialect_insert(dialect, table)
        stmt = _UPSERTS[cache_key] = ins.on_conflict_do_update(
            index_elements=list(keys), set_={v: table.c[v] + ins.excluded[v] for v in values})
    return stmt


def _pg_upsert_sql(n: int, table, keys, values) -> str:
    """One statement for any number of rows: the rows travel as one array per column and
    `unnest` turns them back into rows, in the order given (no per-row statement)."""
    columns = (*keys, *values)
    arrays = ", ".join(f"CAST(%(t{n}_{c})s AS {_PG_ARRAY[type(table.c[c].type).__name__]})"
                       for c in columns)
    updates = ", ".join(f"{v} = {table.name}.{v} + excluded.{v}" for v in values)
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}")


_PG_ARRAY = {"String": "varchar[]", "Date": "date[]", "Integer": "integer[]",
             "SmallInteger": "smallint[]", "Boolean": "boolean[]", "UTCDateTime": "timestamptz[]"}


# The arrays travel as array literals ('{1,-1,0}', '{"web","qr"}'): one text parameter per
# column instead of psycopg2 adapting every element into an ARRAY[...] expression that the
# server then parses constant by constant (a batch's upserts hold thousands of elements).
def _ints(values) -> str:
    if None in values:
        return "{" + ",".join(["NULL" if v is None else str(int(v)) for v in values]) + "}"
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _texts(values) -> str:
    # JSON's list of strings is the array literal when nothing needed escaping (null = NULL);
    # JSON escapes (\n, \u...) mean other things in an array literal, so those are quoted here.
    literal = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    if "\\" not in literal:
        return "{" + literal[1:-1] + "}"
    return "{" + ",".join(
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values) + "}"


def _isoformats(values) -> str:  # dates and aware datetimes (the offset travels along)
    return "{" + ",".join(["NULL" if v is None else v.isoformat() for v in values]) + "}"


def _bools(values) -> str:
    return "{" + ",".join(["NULL" if v is None else "t" if v else "f" for v in values]) + "}"


_PG_LITERAL = {"String": _texts, "Date": _isoformats, "Integer": _ints, "SmallInteger": _ints,
               "Boolean": _bools, "UTCDateTime": _isoformats}


@cache  # looked up per column of every write: SQLAlchemy's column lookup costs more
def _literal(table, column: str):
    return _PG_LITERAL[type(table.c[column].type).__name__]


def write_batch(connection, update_statement, updates: list[dict], changes) -> None:
    """A batch's writes after its complaints are locked: the complaints' new facts (`updates`,
    parameters of `update_statement`, the complaint id as `b_complaint_id`) and the counter
    changes (`add_all`).

    PostgreSQL: all of it in ONE round trip (the complaint rows travel as arrays, like the
    counter rows). SQLite: an executemany, then add_all.
    """
    if connection.dialect.name != "postgresql":
        if updates:
            connection.execute(update_statement, updates)
        add_all(connection, changes)
        return
    prefix, params = None, {}
    if updates:
        prefix = _UPSERTS.get("pg-complaints")
        if prefix is None:
            prefix = _UPSERTS["pg-complaints"] = _pg_update_complaints_sql()
        params = {param: literal([u[name] for u in updates])
                  for param, name, literal in _complaint_literals()}
        params["f_complaint_id"] = _texts([u["b_complaint_id"] for u in updates])
    add_all(connection, changes, prefix, params)


@cache
def _complaint_literals() -> tuple:
    """(parameter, column, literal function) of every complaint column but the id."""
    return tuple((f"f_{c.name}", c.name, _literal(complaints, c.name))
                 for c in complaints.c if c.name != "complaint_id")


def _pg_update_complaints_sql() -> str:
    """UPDATE complaint_facts from arrays (one per column, one element per complaint)."""
    names = [c.name for c in complaints.c]
    arrays = ", ".join(
        f"CAST(%(f_{c})s AS {_PG_ARRAY[type(complaints.c[c].type).__name__]})" for c in names)
    sets = ", ".join(f"{c} = u.{c}" for c in names if c != "complaint_id")
    return (f"UPDATE {complaints.name} AS f SET {sets} FROM unnest({arrays}) "
            f"AS u({', '.join(names)}) WHERE f.complaint_id = u.complaint_id")


def add_all(connection, changes, pg_prefix: str | None = None,
            pg_params: dict | None = None) -> None:
    """Add rows to every counter table: `changes` holds, per table of TABLES (in that order),
    [(key tuple, value list)] merged per key and sorted.

    PostgreSQL: the upserts of all tables go in ONE round trip (statements separated by ';',
    executed in order, so locks are still taken table by table in key order), after the
    statement `pg_prefix` (with `pg_params`) if given. SQLite: one executemany per table
    (in-process, no round trips to save).
    """
    dialect = connection.dialect.name
    if dialect != "postgresql":
        for (table, keys, values), rows in zip(TABLES, changes, strict=True):
            if rows:
                connection.execute(upsert(dialect, table, keys, values), [
                    {**dict(zip(keys, key, strict=True)), **dict(zip(values, change, strict=True))}
                    for key, change in rows
                ])
        return
    present = tuple(i for i, rows in enumerate(changes) if rows)
    if not present and pg_prefix is None:
        return
    sql = _UPSERTS.get(("pg-sql", present, pg_prefix))
    if sql is None:
        sql = _UPSERTS[("pg-sql", present, pg_prefix)] = ";\n".join(
            ([pg_prefix] if pg_prefix else []) + [_pg_upsert_sql(i, *TABLES[i]) for i in present])
    params = dict(pg_params or {})
    for i in present:
        table, keys, values = TABLES[i]
        columns = zip(*(tuple(key) + tuple(change) for key, change in changes[i]), strict=True)
        for name, column in zip((*keys, *values), columns, strict=True):
            params[f"t{i}_{name}"] = _literal(table, name)(list(column))
    connection.exec_driver_sql(sql, params)


def _month(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"date_trunc('month', {column})::date"
    return f"date({column}, 'start of month')"


def refresh(connection, counter_columns=COUNTER_COLUMNS, unit_columns=UNIT_SLA_COLUMNS,
            filter_sets=FILTER_SETS, dimensions=DIMENSIONS) -> None:
    """Recompute the roll-ups from the daily cube (`daily_stats`, `duration_stats`); plain SQL
    over the named columns, so a migration can pass those of its own revision.

    PostgreSQL: one pass per roll-up table (GROUPING SETS, the set told apart by GROUPING());
    elsewhere one GROUP BY per filter set and dimension. Everything lands in stripe 0: stripes
    only spread row locks, sums are what count.
    """
    for table in ("rollup_days", "rollup_months", "rollup_durations"):
        connection.execute(text(f"DELETE FROM {table}"))
    counters = ", ".join(counter_columns)
    sums = ", ".join(f"sum({c})" for c in counter_columns)
    narrow = ", ".join(unit_columns)
    narrow_sums = ", ".join(f"sum({c})" for c in unit_columns)
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        connection.execute(text("SET LOCAL jit = off"))
        _refresh_grouping_sets(connection, filter_sets, dimensions, counters, sums, narrow,
                               narrow_sums)
        return
    month = _month(connection.dialect.name, "day")
    for dims in filter_sets:
        fdim = "+".join(dims)
        fvalue = " || '|' || ".join(dims) or "''"
        group = "".join(f"{d}, " for d in dims)
        connection.execute(text(
            f"INSERT INTO rollup_days (filter_dim, filter_value, day, shard, {counters}) "
            f"SELECT :fdim, {fvalue}, day, 0, {sums} FROM daily_stats GROUP BY {group}day"
        ), {"fdim": fdim})
        for dim in dimensions:
            if dim in dims:
                continue
            connection.execute(text(
                "INSERT INTO rollup_months (filter_dim, filter_value, month, dim, value, shard, "
                f"{narrow}) SELECT :fdim, {fvalue}, {month}, :dim, {dim}, 0, {narrow_sums} "
                f"FROM daily_stats GROUP BY {group}{month}, {dim}"
            ), {"fdim": fdim, "dim": dim})
        connection.execute(text(
            "INSERT INTO rollup_durations (filter_dim, filter_value, month, measure, "
            f"working_days, shard, n) SELECT :fdim, {fvalue}, {month}, measure, working_days, 0, "
            f"sum(n) FROM duration_stats GROUP BY {group}{month}, measure, working_days"
        ), {"fdim": fdim})


def _refresh_grouping_sets(connection, filter_sets, dimensions, counters, sums, narrow,
                           narrow_sums) -> None:
    dims = ", ".join(dimensions)
    mask = f"GROUPING({dims})"

    def bits(present) -> int:
        # GROUPING() sets a bit for every column NOT grouped; the first column is the highest.
        n = len(dimensions)
        return sum(1 << (n - 1 - i) for i, d in enumerate(dimensions) if d not in present)

    def case(pairs) -> str:
        return "CASE " + " ".join(f"WHEN {mask} = {b} THEN {v}" for b, v in pairs) + " END"

    def filter_columns(sets):
        fdim = case((bits(present), f"'{'+'.join(f)}'") for f, present in sets)
        fvalue = case((bits(present), " || '|' || ".join(f) or "''") for f, present in sets)
        return fdim, fvalue

    def grouping(extra, sets) -> str:
        return "GROUPING SETS (" + ", ".join(
            "(" + ", ".join((*present, *extra)) + ")" for _, present in sets) + ")"

    day_sets = [(f, tuple(f)) for f in filter_sets]
    fdim, fvalue = filter_columns(day_sets)
    connection.execute(text(
        f"INSERT INTO rollup_days (filter_dim, filter_value, day, shard, {counters}) "
        f"SELECT {fdim}, {fvalue}, day, 0, {sums} FROM daily_stats "
        f"GROUP BY {grouping(('day',), day_sets)}"))
    # One grouping set can serve several (filter, dimension) pairs ({unit, kecamatan}: the
    # kecamatans of a unit and the units of a kecamatan): aggregate each set once, then fan the
    # rows out to their pairs through a small mapping.
    pairs = [(f, d, tuple(sorted((*f, d), key=dimensions.index)))
             for f in filter_sets for d in dimensions if d not in f]
    sets = sorted({present for _, _, present in pairs}, key=bits)
    mapping = ", ".join(f"({bits(present)}, '{'+'.join(f)}', '{d}')" for f, d, present in pairs)
    fvalue = "CASE p.fdim " + " ".join(
        f"WHEN '{'+'.join(f)}' THEN " + (" || '|' || ".join(f"g.{c}" for c in f) or "''")
        for f in filter_sets) + " END"
    value = "CASE p.dim " + " ".join(f"WHEN '{d}' THEN g.{d}" for d in dimensions) + " END"
    connection.execute(text(
        "INSERT INTO rollup_months (filter_dim, filter_value, month, dim, value, shard, "
        f"{narrow}) SELECT p.fdim, {fvalue}, g.month, p.dim, {value}, 0, "
        + ", ".join(f"g.{c}" for c in narrow.split(", "))
        + f" FROM (SELECT {mask} AS mask, month, {dims}, {narrow_sums.replace('sum(', 'sum(m.')}"
        f" FROM (SELECT date_trunc('month', day)::date AS month, {dims}, {narrow} "
        f"FROM daily_stats) AS m GROUP BY GROUPING SETS ("
        + ", ".join("(" + ", ".join((*present, "month")) + ")" for present in sets)
        + f")) AS g(mask, month, {dims}, {narrow}) "
        f"JOIN (VALUES {mapping}) AS p(mask, fdim, dim) ON p.mask = g.mask"))
    fdim, fvalue = filter_columns(day_sets)
    connection.execute(text(
        "INSERT INTO rollup_durations (filter_dim, filter_value, month, measure, working_days, "
        f"shard, n) SELECT {fdim}, {fvalue}, month, measure, working_days, 0, sum(n) "
        f"FROM (SELECT date_trunc('month', day)::date AS month, {dims}, measure, working_days, n "
        f"FROM duration_stats) AS m "
        f"GROUP BY {grouping(('month', 'measure', 'working_days'), day_sets)}"))
