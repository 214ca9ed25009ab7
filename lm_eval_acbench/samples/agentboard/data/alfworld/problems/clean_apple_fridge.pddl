; acbench sample (written for acbench, not from ALFWorld's data): a small kitchen of the ALFRED
; domain. Object names follow ALFWorld's "<Type>_bar_<id>" form so that alfworld's demangler
; calls them "apple 1", "countertop 1".
(define (problem acbench_clean_apple_fridge)
(:domain alfred)
(:objects
    agent1 - agent
    AppleType MugType - otype
    CounterTopType FridgeType SinkBasinType - rtype
    Apple_bar_01 Mug_bar_01 - object
    CounterTop_bar_01 Fridge_bar_01 Sink_bar_01_bar_SinkBasin - receptacle
    loc_bar_00 loc_bar_01 loc_bar_02 loc_bar_03 - location
)
(:init
    (atLocation agent1 loc_bar_00)
    (receptacleType CounterTop_bar_01 CounterTopType)
    (receptacleType Fridge_bar_01 FridgeType)
    (receptacleType Sink_bar_01_bar_SinkBasin SinkBasinType)
    (receptacleAtLocation CounterTop_bar_01 loc_bar_01)
    (receptacleAtLocation Sink_bar_01_bar_SinkBasin loc_bar_02)
    (receptacleAtLocation Fridge_bar_01 loc_bar_03)
    (openable Fridge_bar_01)
    (objectType Apple_bar_01 AppleType)
    (objectType Mug_bar_01 MugType)
    (pickupable Apple_bar_01)
    (pickupable Mug_bar_01)
    (cleanable Apple_bar_01)
    (cleanable Mug_bar_01)
    (inReceptacle Apple_bar_01 CounterTop_bar_01)
    (inReceptacle Mug_bar_01 CounterTop_bar_01)
    (objectAtLocation Apple_bar_01 loc_bar_01)
    (objectAtLocation Mug_bar_01 loc_bar_01)
    (canContain CounterTopType AppleType)
    (canContain FridgeType AppleType)
    (canContain SinkBasinType AppleType)
    (canContain CounterTopType MugType)
    (canContain FridgeType MugType)
    (canContain SinkBasinType MugType)
)
(:goal
    (exists (?r - receptacle)
        (exists (?o - object)
            (and
                (objectType ?o AppleType)
                (receptacleType ?r FridgeType)
                (isClean ?o)
                (inReceptacle ?o ?r)
            )
        )
    )
)
)
