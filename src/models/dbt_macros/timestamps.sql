{#- current_timestamp(): the statement's start time, DataFusion's now() (UTC).
    The backcompat forms and snapshot_get_time cast it to a plain timestamp
    (no time zone), as dbt's Postgres-style defaults do. -#}
{% macro current_timestamp() -%}
  {{ return(adapter.dispatch('current_timestamp', 'dbt')()) }}
{%- endmacro %}

{% macro sluice__current_timestamp() -%}
    now()
{%- endmacro %}

{% macro snapshot_get_time() -%}
  {{ return(adapter.dispatch('snapshot_get_time', 'dbt')()) }}
{%- endmacro %}

{% macro default__snapshot_get_time() -%}
    {{ dbt.current_timestamp() }}
{%- endmacro %}

{% macro sluice__snapshot_get_time() -%}
    cast({{ dbt.current_timestamp() }} as timestamp)
{%- endmacro %}

{% macro current_timestamp_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{%- endmacro %}

{% macro default__current_timestamp_backcompat() -%}
    cast(current_timestamp as timestamp)
{%- endmacro %}

{% macro sluice__current_timestamp_backcompat() -%}
    cast(now() as timestamp)
{%- endmacro %}

{% macro current_timestamp_in_utc_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_in_utc_backcompat', 'dbt')()) }}
{%- endmacro %}

{% macro default__current_timestamp_in_utc_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{%- endmacro %}
