use super::*;

fn opts(label: Option<LabelColumn>, header: Header) -> Options {
    Options {
        label,
        header,
        classes: None,
    }
}

fn parse_str(text: &str, options: &Options) -> Result<(Raw, Vec<String>), DataError> {
    parse(text.as_bytes(), "f.csv", options)
}

#[test]
fn errors_name_the_line() {
    let last = opts(None, Header::Auto);
    let e = parse_str("1,2,0\n3,4\n", &last).unwrap_err();
    assert_eq!(e.to_string(), "f.csv: line 2: expected 3 fields, found 2");
    let e = parse_str("a,b,label\n1,x,0\n", &last).unwrap_err();
    assert!(e.message.contains("line 2: `x` is not a number"), "{e}");
    let e = parse_str("1,2,\n", &last).unwrap_err();
    assert!(e.message.contains("line 1: the label is empty"), "{e}");
}

#[test]
fn labels_are_class_values_not_counts() {
    // Labels {0, 5}: two classes; 99999 does not make 100,000 outputs.
    let (raw, classes) = parse_str("1,0\n2,5\n3,5\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(classes, ["0", "5"]);
    assert_eq!(raw.labels, [0, 1, 1]);
    let (raw, classes) = parse_str("1,99999\n2,7\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(classes, ["7", "99999"]);
    assert_eq!(raw.labels, [1, 0]);
    // Numeric order, not text order: 2 before 10; negative labels are fine.
    let (_, classes) = parse_str("1,10\n2,2\n3,-1\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(classes, ["-1", "2", "10"]);
    // Words sort as text.
    let (raw, classes) = parse_str(
        "1,setosa\n2,virginica\n3,setosa\n",
        &opts(None, Header::Auto),
    )
    .unwrap();
    assert_eq!(classes, ["setosa", "virginica"]);
    assert_eq!(raw.labels, [0, 1, 0]);
}

#[test]
fn label_column_by_name_or_index_kaggle_style_first() {
    let kaggle = "label,p0,p1\n3,0.5,1\n7,0.25,2\n";
    let by_name = opts(Some(LabelColumn::Name("label".into())), Header::Auto);
    let (raw, classes) = parse_str(kaggle, &by_name).unwrap();
    assert_eq!(classes, ["3", "7"]);
    assert_eq!(raw.features, Values::Floats(vec![0.5, 1.0, 0.25, 2.0]));
    assert_eq!(raw.shape.dims(), [2]);
    let by_index = opts(Some(LabelColumn::Index(0)), Header::Auto);
    assert_eq!(
        parse_str(kaggle, &by_index).unwrap().0.features,
        raw.features
    );
    let from_end = opts(Some(LabelColumn::Index(-3)), Header::Given(true));
    assert_eq!(parse_str(kaggle, &from_end).unwrap().0.labels, [0, 1]);

    let e = parse_str(
        kaggle,
        &opts(Some(LabelColumn::Name("y".into())), Header::Auto),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("no such column; the header has: label, p0, p1"),
        "{e}"
    );
    let e = parse_str(kaggle, &opts(Some(LabelColumn::Index(3)), Header::Auto)).unwrap_err();
    assert!(e.message.contains("has 3 columns"), "{e}");
    let e = parse_str(
        "1,2,3\n",
        &opts(Some(LabelColumn::Name("y".into())), Header::Auto),
    )
    .unwrap_err();
    assert!(e.message.contains("no header line"), "{e}");
}

#[test]
fn header_auto_true_and_false() {
    // All numbers: auto sees no header, so the first line is an example.
    let (raw, _) = parse_str("1,2,0\n3,4,1\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(raw.labels.len(), 2);
    // A numeric header (column numbers) must be declared.
    let (raw, _) = parse_str("0,1,2\n3,4,1\n5,6,0\n", &opts(None, Header::Given(true))).unwrap();
    assert_eq!(raw.features, Values::Floats(vec![3.0, 4.0, 5.0, 6.0]));
    // A word in the first line with header = false is an error on line 1.
    let e = parse_str("a,b,y\n1,2,0\n", &opts(None, Header::Given(false))).unwrap_err();
    assert!(e.message.starts_with("line 1: `a` is not a number"), "{e}");
}

#[test]
fn listed_classes_fix_the_order_and_refuse_others() {
    let listed = Options {
        classes: Some(vec!["b".into(), "a".into()]),
        ..opts(None, Header::Auto)
    };
    let (raw, classes) = parse_str("1,a\n2,b\n", &listed).unwrap();
    assert_eq!(
        (raw.labels, classes),
        (vec![1, 0], vec!["b".to_string(), "a".into()])
    );
    let e = parse_str("1,a\n2,c\n", &listed).unwrap_err();
    assert!(
        e.message
            .contains("line 2: label `c` is not one of data.classes (b, a)"),
        "{e}"
    );
}

#[test]
fn a_byte_order_mark_does_not_cost_the_first_row() {
    let (raw, classes) = parse_str("\u{feff}1,2,0\n3,4,1\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(raw.labels, [0, 1]);
    assert_eq!(raw.features, Values::Floats(vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(classes, ["0", "1"]);
    // Nor the header's first name.
    let by_name = opts(Some(LabelColumn::Name("y".into())), Header::Auto);
    let (raw, _) = parse_str("\u{feff}y,x\n1,2\n0,3\n", &by_name).unwrap();
    assert_eq!(raw.labels, [1, 0]);
}

#[test]
fn labels_that_are_equal_numbers_are_one_class() {
    let (raw, classes) = parse_str(
        "5,1\n6,1.0\n7,2\n8,1e0\n9,2.00\n",
        &opts(None, Header::Auto),
    )
    .unwrap();
    assert_eq!(classes, ["1", "2"]);
    assert_eq!(raw.labels, [0, 0, 1, 0, 1]);
    // Against listed classes too (a resumed run's preset lists them as first spelled).
    let listed = Options {
        classes: Some(vec!["2".into(), "1".into()]),
        ..opts(None, Header::Auto)
    };
    let (raw, _) = parse_str("5,1.0\n6,2e0\n", &listed).unwrap();
    assert_eq!(raw.labels, [1, 0]);
    // Words stay words.
    let (_, classes) = parse_str("1,a\n2,A\n3,a\n", &opts(None, Header::Auto)).unwrap();
    assert_eq!(classes, ["A", "a"]);
}
