{#- Macros of dbt's namespace that sluice implements with its own Rust functions. -#}
{% macro statement(name=none, fetch_result=false, auto_begin=true, language='sql') -%}
  {%- set sql = caller() -%}
  {{- __sluice_statement(name, sql, fetch_result) -}}
{%- endmacro %}
