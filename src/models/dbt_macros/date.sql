{#- date(year, month, day): a date from its parts (dbt 1.8). Numbers are
    checked when the macro renders; expressions are passed to make_date, which
    fails on an impossible date such as February 30. -#}
{% macro date(year, month, day) %}
  {{ return(adapter.dispatch('date', 'dbt')(year, month, day)) }}
{% endmacro %}

{% macro default__date(year, month, day) -%}
    make_date({{ year }}, {{ month }}, {{ day }})
{%- endmacro %}

{% macro sluice__date(year, month, day) -%}
  {%- if year is number and month is number and day is number -%}
    {%- set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 -%}
    {%- set month_days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] -%}
    {%- if month < 1 or month > 12 or day < 1 or day > month_days[month - 1] -%}
      {{- exceptions.raise_compiler_error("date(" ~ year ~ ", " ~ month ~ ", " ~ day ~ "): no such date; give a year, a month from 1 to 12 and a day that month has") -}}
    {%- endif -%}
  {%- endif -%}
    make_date({{ year }}, {{ month }}, {{ day }})
{%- endmacro %}
