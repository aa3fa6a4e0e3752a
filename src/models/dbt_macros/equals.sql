{#- equals(expr1, expr2): a SQL condition. dbt 1.10's default (behaviour flag
    enable_truthy_nulls_equals_macro off) is plain `=`, so NULL never equals
    anything; set the project var `enable_truthy_nulls_equals_macro: true` to
    make two NULLs equal, as the flag does in dbt. -#}
{% macro equals(expr1, expr2) %}
  {{ return(adapter.dispatch('equals', 'dbt')(expr1, expr2)) }}
{%- endmacro %}

{% macro default__equals(expr1, expr2) -%}
  {%- if var('enable_truthy_nulls_equals_macro', false) -%}
    (({{ expr1 }}) is not distinct from ({{ expr2 }}))
  {%- else -%}
    (({{ expr1 }}) = ({{ expr2 }}))
  {%- endif -%}
{%- endmacro %}
