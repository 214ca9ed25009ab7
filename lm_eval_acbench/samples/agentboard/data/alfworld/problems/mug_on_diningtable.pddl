; acbench sample (written for acbench, not from ALFWorld's data): a mug in a closed cabinet is to
; go on the dining table.
(define (problem acbench_mug_on_diningtable)
(:domain alfred)
(:objects
    agent1 - agent
    MugType BookType - otype
    CabinetType DiningTableType - rtype
    Mug_bar_01 Book_bar_01 - object
    Cabinet_bar_01 Cabinet_bar_02 DiningTable_bar_01 - receptacle
    loc_bar_00 loc_bar_01 loc_bar_02 loc_bar_03 - location
)
(:init
    (atLocation agent1 loc_bar_00)
    (receptacleType Cabinet_bar_01 CabinetType)
    (receptacleType Cabinet_bar_02 CabinetType)
    (receptacleType DiningTable_bar_01 DiningTableType)
    (receptacleAtLocation Cabinet_bar_01 loc_bar_01)
    (receptacleAtLocation Cabinet_bar_02 loc_bar_02)
    (receptacleAtLocation DiningTable_bar_01 loc_bar_03)
    (openable Cabinet_bar_01)
    (openable Cabinet_bar_02)
    (objectType Mug_bar_01 MugType)
    (objectType Book_bar_01 BookType)
    (pickupable Mug_bar_01)
    (pickupable Book_bar_01)
    (inReceptacle Mug_bar_01 Cabinet_bar_02)
    (inReceptacle Book_bar_01 DiningTable_bar_01)
    (objectAtLocation Mug_bar_01 loc_bar_02)
    (objectAtLocation Book_bar_01 loc_bar_03)
    (canContain CabinetType MugType)
    (canContain DiningTableType MugType)
    (canContain CabinetType BookType)
    (canContain DiningTableType BookType)
)
(:goal
    (exists (?r - receptacle)
        (exists (?o - object)
            (and
                (objectType ?o MugType)
                (receptacleType ?r DiningTableType)
                (inReceptacle ?o ?r)
            )
        )
    )
)
)
