SELECT * FROM read_csv('x.csv', true, ';') JOIN 'y.parquet' USING (id)
