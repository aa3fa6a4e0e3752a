{#- datediff(first_date, second_date, datepart): how many datepart boundaries
    lie between the two, positive when second_date is later. This is dbt's
    meaning (and DuckDB's date_diff): datediff('2024-01-01 23:00',
    '2024-01-02 01:00', 'day') = 1, datediff('2024-01-31', '2024-02-01',
    'month') = 1, datediff('2024-12-31', '2025-01-01', 'year') = 1.

    DataFusion 55 has no datediff, so each part is built from exact integer
    arithmetic: days from subtracting dates, months and years from date_part,
    and smaller parts from the day count plus the difference of the time
    fields. Weeks start on Sunday, as in dbt-postgres and dbt-duckdb. NULL in,
    NULL out. The result is a bigint. -#}
{% macro datediff(first_date, second_date, datepart) %}
  {{ return(adapter.dispatch('datediff', 'dbt')(first_date, second_date, datepart)) }}
{% endmacro %}

{% macro default__datediff(first_date, second_date, datepart) -%}
    datediff(
        {{ datepart }},
        {{ first_date }},
        {{ second_date }}
        )
{%- endmacro %}

{% macro sluice__datediff(first_date, second_date, datepart) -%}
  {%- set part = _sluice_datepart(datepart, 'datediff',
      ['year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond', 'nanosecond']) -%}
  {%- set a = '(' ~ first_date ~ ')' -%}
  {%- set b = '(' ~ second_date ~ ')' -%}
  {%- set years = "(date_part('year', " ~ b ~ ") - date_part('year', " ~ a ~ "))" -%}
  {%- set days = "(cast(" ~ b ~ " as date) - cast(" ~ a ~ " as date))" -%}
  {%- set hours = "(" ~ days ~ " * 24 + date_part('hour', " ~ b ~ ") - date_part('hour', " ~ a ~ "))" -%}
  {%- set minutes = "(" ~ hours ~ " * 60 + date_part('minute', " ~ b ~ ") - date_part('minute', " ~ a ~ "))" -%}
  {#- date_part's millisecond, microsecond and nanosecond include the seconds -#}
  {%- set per_minute = {'second': '60', 'millisecond': '60000', 'microsecond': '60000000', 'nanosecond': '60000000000'} -%}
  {%- if part == 'year' -%}
    cast({{ years }} as bigint)
  {%- elif part == 'quarter' -%}
    cast({{ years }} * 4 + date_part('quarter', {{ b }}) - date_part('quarter', {{ a }}) as bigint)
  {%- elif part == 'month' -%}
    cast({{ years }} * 12 + date_part('month', {{ b }}) - date_part('month', {{ a }}) as bigint)
  {%- elif part == 'week' -%}
    {#- whole weeks since the Sunday 1970-01-04, rounded down (floor) -#}
    cast(floor((cast({{ b }} as date) - date '1970-01-04') / 7.0) - floor((cast({{ a }} as date) - date '1970-01-04') / 7.0) as bigint)
  {%- elif part == 'day' -%}
    cast({{ days }} as bigint)
  {%- elif part == 'hour' -%}
    cast({{ hours }} as bigint)
  {%- elif part == 'minute' -%}
    cast({{ minutes }} as bigint)
  {%- else -%}
    cast({{ minutes }} * {{ per_minute[part] }} + date_part('{{ part }}', {{ b }}) - date_part('{{ part }}', {{ a }}) as bigint)
  {%- endif -%}
{%- endmacro %}
