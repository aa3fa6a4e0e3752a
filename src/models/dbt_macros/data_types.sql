{#- The portable type names, as DataFusion 55 spells them in a cast:
    type_string varchar (Utf8View), type_timestamp timestamp (nanoseconds,
    no time zone), type_float double (Float64: dbt's "float" means double
    precision, while DataFusion's float is 32-bit), type_numeric
    numeric(28,6) (Decimal128(28, 6), dbt's precision and scale),
    type_bigint bigint, type_int integer (Int32), type_boolean boolean. -#}
{% macro type_string() -%}
  {{ return(adapter.dispatch('type_string', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_string() -%}
  {{ return('varchar') }}
{%- endmacro %}

{% macro type_timestamp() -%}
  {{ return(adapter.dispatch('type_timestamp', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_timestamp() -%}
  {{ return('timestamp') }}
{%- endmacro %}

{% macro type_float() -%}
  {{ return(adapter.dispatch('type_float', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_float() -%}
  {{ return('float') }}
{%- endmacro %}

{% macro sluice__type_float() -%}
  {{ return('double') }}
{%- endmacro %}

{% macro type_numeric() -%}
  {{ return(adapter.dispatch('type_numeric', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_numeric() -%}
  {{ return('numeric(28,6)') }}
{%- endmacro %}

{% macro type_bigint() -%}
  {{ return(adapter.dispatch('type_bigint', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_bigint() -%}
  {{ return('bigint') }}
{%- endmacro %}

{% macro type_int() -%}
  {{ return(adapter.dispatch('type_int', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_int() -%}
  {{ return('integer') }}
{%- endmacro %}

{% macro type_boolean() -%}
  {{ return(adapter.dispatch('type_boolean', 'dbt')()) }}
{%- endmacro %}

{% macro default__type_boolean() -%}
  {{ return('boolean') }}
{%- endmacro %}
