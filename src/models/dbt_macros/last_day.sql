{#- last_day(date, datepart): the last day (a date) of the datepart containing
    `date`, e.g. last_day('2024-02-10', 'month') = 2024-02-29. -#}
{% macro last_day(date, datepart) %}
  {{ return(adapter.dispatch('last_day', 'dbt')(date, datepart)) }}
{% endmacro %}

{%- macro default_last_day(date, datepart) -%}
    cast(
        {{ dbt.dateadd('day', '-1', dbt.dateadd(datepart, '1', dbt.date_trunc(datepart, date))) }}
        as date)
{%- endmacro -%}

{% macro default__last_day(date, datepart) -%}
    {{ dbt.default_last_day(date, datepart) }}
{%- endmacro %}

{% macro sluice__last_day(date, datepart) -%}
  {%- set part = _sluice_datepart(datepart, 'last_day', ['year', 'quarter', 'month', 'week']) -%}
  {%- set length = {'year': "interval '1 year'", 'quarter': "interval '3 month'", 'month': "interval '1 month'", 'week': "interval '7 day'"} -%}
    cast(date_trunc('{{ part }}', {{ date }}) + {{ length[part] }} - interval '1 day' as date)
{%- endmacro %}
