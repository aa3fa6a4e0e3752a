{#- date_trunc(datepart, date): the start of the datepart containing `date`.
    DataFusion's date_trunc returns a timestamp, also for a date argument
    (as Postgres and DuckDB do); weeks start on Monday. -#}
{% macro date_trunc(datepart, date) -%}
  {{ return(adapter.dispatch('date_trunc', 'dbt')(datepart, date)) }}
{%- endmacro %}

{% macro default__date_trunc(datepart, date) -%}
    date_trunc('{{ datepart }}', {{ date }})
{%- endmacro %}

{% macro sluice__date_trunc(datepart, date) -%}
  {%- set part = _sluice_datepart(datepart, 'date_trunc',
      ['year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond']) -%}
    date_trunc('{{ part }}', {{ date }})
{%- endmacro %}
