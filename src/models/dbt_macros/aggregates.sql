{#- Aggregates: listagg(measure, delimiter_text, order_by_clause, limit_num)
    (the non-NULL values joined by the delimiter, in order_by_clause's order,
    at most limit_num of them; NULL when there are none), bool_or(expression),
    any_value(expression). -#}
{% macro listagg(measure, delimiter_text="','", order_by_clause=none, limit_num=none) -%}
  {{ return(adapter.dispatch('listagg', 'dbt')(measure, delimiter_text, order_by_clause, limit_num)) }}
{%- endmacro %}

{% macro default__listagg(measure, delimiter_text, order_by_clause, limit_num) -%}
  {%- if limit_num -%}
    array_to_string(array_slice(array_agg({{ measure }}{% if order_by_clause %} {{ order_by_clause }}{% endif %}), 1, {{ limit_num }}), {{ delimiter_text }})
  {%- else -%}
    listagg({{ measure }}, {{ delimiter_text }}){% if order_by_clause %} within group ({{ order_by_clause }}){% endif %}
  {%- endif -%}
{%- endmacro %}

{#- DataFusion takes the ORDER BY inside the call (string_agg(x, ',' order by
    y)), not as WITHIN GROUP. With a limit the values are gathered into an
    array (NULLs filtered out first, so they do not use up the limit), cut to
    limit_num and joined. DataFusion 55 refuses two ordered aggregates with
    different orderings in one SELECT ("Conflicting ordering requirements in
    aggregate functions is not supported"): compute those in separate
    subqueries. -#}
{% macro sluice__listagg(measure, delimiter_text, order_by_clause, limit_num) -%}
  {%- set ordering = (' ' ~ order_by_clause) if order_by_clause else '' -%}
  {%- if limit_num -%}
    {#- `DISTINCT x` (as dbt's tests pass it) stays in the aggregate; the NULL checks need x alone -#}
    {%- set m = measure | string | trim -%}
    {%- set value = m[9:] if (m | lower) is startingwith('distinct ') else m -%}
    case when count({{ value }}) = 0 then null else array_to_string(array_slice(array_agg({{ m }}{{ ordering }}) filter (where ({{ value }}) is not null), 1, {{ limit_num }}), {{ delimiter_text }}) end
  {%- else -%}
    string_agg({{ measure }}, {{ delimiter_text }}{{ ordering }})
  {%- endif -%}
{%- endmacro %}

{% macro bool_or(expression) -%}
  {{ return(adapter.dispatch('bool_or', 'dbt')(expression)) }}
{%- endmacro %}

{% macro default__bool_or(expression) -%}
    bool_or({{ expression }})
{%- endmacro %}

{% macro any_value(expression) -%}
  {{ return(adapter.dispatch('any_value', 'dbt')(expression)) }}
{%- endmacro %}

{% macro default__any_value(expression) -%}
    any_value({{ expression }})
{%- endmacro %}
