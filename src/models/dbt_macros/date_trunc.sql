{#- date_trunc(datepart, date): the start of the datepart containing `date`.
    DataFusion's date_trunc returns a timestamp, also for a date argument
    (as Postgres and DuckDB do); weeks start on Monday. Milliseconds and
    microseconds use date_bin, because DataFusion 55's date_trunc rounds those
    up instead of down before 1970 (10:00:00.1234 on 1969-06-01 becomes .124). -#}
{% macro date_trunc(datepart, date) -%}
  {{ return(adapter.dispatch('date_trunc', 'dbt')(datepart, date)) }}
{%- endmacro %}

{% macro default__date_trunc(datepart, date) -%}
    date_trunc('{{ datepart }}', {{ date }})
{%- endmacro %}

{% macro sluice__date_trunc(datepart, date) -%}
  {%- set part = _sluice_datepart(datepart, 'date_trunc',
      ['year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond']) -%}
  {%- if part in ['millisecond', 'microsecond'] -%}
    date_bin(interval '1 {{ part }}', {{ date }})
  {%- else -%}
    date_trunc('{{ part }}', {{ date }})
  {%- endif -%}
{%- endmacro %}
