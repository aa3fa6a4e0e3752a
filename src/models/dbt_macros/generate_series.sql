{#- get_powers_of_two(upper_bound): the smallest n with 2^n >= upper_bound
    (at least 1), a number for Jinja; generate_series(upper_bound): a query
    whose column generated_number holds 1 .. upper_bound.

    sluice__generate_series uses DataFusion's generate_series array function,
    so upper_bound may be a SQL expression (as get_intervals_between returns
    in sluice) as well as a number; 0, a negative bound or NULL give no rows. -#}
{% macro get_powers_of_two(upper_bound) -%}
  {{ return(adapter.dispatch('get_powers_of_two', 'dbt')(upper_bound)) }}
{%- endmacro %}

{% macro default__get_powers_of_two(upper_bound) -%}
  {%- if upper_bound is not number -%}
    {{- exceptions.raise_compiler_error("get_powers_of_two: upper bound must be a number, got `" ~ upper_bound ~ "`") -}}
  {%- endif -%}
  {%- if upper_bound <= 0 -%}
    {{- exceptions.raise_compiler_error("get_powers_of_two: upper bound must be positive, got " ~ upper_bound) -}}
  {%- endif -%}
  {#- the first n in 1..99 with upper_bound <= 2^n, without leaving the loop early -#}
  {%- set found = namespace(n=none) -%}
  {%- for n in range(1, 100) -%}
    {%- if found.n is none and upper_bound <= 2 ** n -%}
      {%- set found.n = n -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if found.n is none -%}
    {{- exceptions.raise_compiler_error("get_powers_of_two: upper bound " ~ upper_bound ~ " is above 2^99") -}}
  {%- endif -%}
  {{- return(found.n) -}}
{%- endmacro %}

{% macro generate_series(upper_bound) %}
  {{ return(adapter.dispatch('generate_series', 'dbt')(upper_bound)) }}
{% endmacro %}

{% macro default__generate_series(upper_bound) %}
    {%- set n = dbt.get_powers_of_two(upper_bound) | int %}
    with p as (
        select 0 as generated_number union all select 1
    ), unioned as (
    select
    {% for i in range(n) %}
    p{{ i }}.generated_number * power(2, {{ i }}){% if not loop.last %} +{% endif %}
    {%- endfor %}
    + 1
    as generated_number
    from
    {% for i in range(n) %}
    p as p{{ i }}{% if not loop.last %} cross join{% endif %}
    {%- endfor %}
    )
    select *
    from unioned
    where generated_number <= {{ upper_bound }}
    order by generated_number
{% endmacro %}

{% macro sluice__generate_series(upper_bound) -%}
    select unnest(generate_series(1, cast({{ upper_bound }} as bigint))) as generated_number
{%- endmacro %}
