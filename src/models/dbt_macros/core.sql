{#- Macros of dbt's namespace that sluice implements with its own Rust functions. -#}
{% macro statement(name=none, fetch_result=false, auto_begin=true, language='sql') -%}
  {%- set sql = caller() -%}
  {{- __sluice_statement(name, sql, fetch_result) -}}
{%- endmacro %}

{% macro should_store_failures() -%}
  {{ return(config.get('store_failures', false) or flags.STORE_FAILURES) }}
{%- endmacro %}

{% macro should_full_refresh() -%}
  {{ return(config.get('full_refresh', false) or flags.FULL_REFRESH) }}
{%- endmacro %}
