{#- get_intervals_between(start_date, end_date, datepart): how many dateparts
    from start_date to end_date. dbt runs a query at compile time for this
    number; sluice returns the SQL expression instead (a datediff of the two),
    which sluice__generate_series accepts as its bound.

    date_spine(datepart, start_date, end_date): a query with one column,
    date_<datepart>, holding start_date plus 0, 1, 2, ... dateparts, up to but
    not including end_date (as in dbt). -#}
{% macro get_intervals_between(start_date, end_date, datepart) -%}
  {{ return(adapter.dispatch('get_intervals_between', 'dbt')(start_date, end_date, datepart)) }}
{%- endmacro %}

{% macro sluice__get_intervals_between(start_date, end_date, datepart) -%}
  {{- return('(' ~ dbt.datediff(start_date, end_date, datepart) ~ ')') -}}
{%- endmacro %}

{% macro date_spine(datepart, start_date, end_date) %}
  {{ return(adapter.dispatch('date_spine', 'dbt')(datepart, start_date, end_date)) }}
{%- endmacro %}

{% macro default__date_spine(datepart, start_date, end_date) %}
    with rawdata as (
        {{ dbt.generate_series(dbt.get_intervals_between(start_date, end_date, datepart)) }}
    ),
    all_periods as (
        select (
            {{ dbt.dateadd(datepart, "row_number() over (order by 1) - 1", start_date) }}
        ) as date_{{ datepart }}
        from rawdata
    ),
    filtered as (
        select *
        from all_periods
        where date_{{ datepart }} <= {{ end_date }}
    )
    select * from filtered
{% endmacro %}

{% macro sluice__date_spine(datepart, start_date, end_date) %}
  {%- set part = _sluice_datepart(datepart, 'date_spine',
      ['year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond']) %}
    with rawdata as (
        {{ dbt.generate_series(dbt.get_intervals_between(start_date, end_date, part)) }}
    ),
    all_periods as (
        select (
            {{ dbt.dateadd(part, "generated_number - 1", start_date) }}
        ) as date_{{ part }}
        from rawdata
    ),
    filtered as (
        select *
        from all_periods
        where date_{{ part }} <= {{ end_date }}
    )
    select * from filtered
{% endmacro %}
